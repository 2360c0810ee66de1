"""Recipient resolution over the store's lookups (delivery/recipients.py): an alias
replaces the address with its targets (RFC 5321 §3.9.1), expanded again while they
are aliases, each address once; the catch-all; who may send as whom."""

from __future__ import annotations

import asyncio

from mailwright.address import parse_mailbox
from mailwright.delivery import recipients
from mailwright.delivery.recipients import Target


class Directory:
    """The lookups recipient resolution needs, from dicts: the policy needs no database."""

    def __init__(self, domains, accounts, aliases):
        self.domains, self.accounts, self.aliases = set(domains), accounts, aliases

    async def is_local_domain(self, domain):
        return domain in self.domains

    async def find_account(self, address):
        return self.accounts.get(address.key)

    async def alias(self, address):
        return self.aliases.get(address.key)

    async def catch_all(self, domain):
        return self.aliases.get(f"@{domain}")


def resolve(directory, text):
    return asyncio.run(recipients.resolve(directory, parse_mailbox(text)))


DIRECTORY = Directory(
    ["a.test", "b.test"], {"ann@a.test": 1, "bob@b.test": 2},
    {"team@a.test": ["ann@a.test", "list@a.test", "Ann@a.test"],
     "list@a.test": ["bob@b.test", "far@remote.test", "team@a.test"],
     "loop1@a.test": ["loop2@a.test"], "loop2@a.test": ["loop1@a.test"],
     "bad@a.test": ["not an address", "ann@a.test"],
     "@b.test": ["bob@b.test"]})


def test_accounts_aliases_and_foreign_domains():
    assert resolve(DIRECTORY, "Ann@a.test") == [Target("Ann@a.test", 1)]
    assert resolve(DIRECTORY, "x@elsewhere.test") is None           # not ours: relay
    assert resolve(DIRECTORY, "nobody@a.test") == []                 # ours, unknown


def test_alias_expansion_gives_each_target_once_and_ends_loops():
    assert resolve(DIRECTORY, "team@a.test") == [
        Target("ann@a.test", 1), Target("bob@b.test", 2), Target("far@remote.test")]
    assert resolve(DIRECTORY, "loop1@a.test") == []
    assert resolve(DIRECTORY, "bad@a.test") == [Target("ann@a.test", 1)]


def test_alias_chains_end_at_the_depth_limit():
    depth = recipients.MAX_ALIAS_DEPTH
    chain = {f"c{i}@a.test": [f"c{i + 1}@a.test"] for i in range(depth + 1)}
    directory = Directory(["a.test"], {f"c{depth}@a.test": 7, f"c{depth + 1}@a.test": 8},
                          chain)
    assert resolve(directory, "c0@a.test") == [Target(f"c{depth}@a.test", 7)]
    chain[f"c{depth}@a.test"] = [f"c{depth + 1}@a.test"]
    directory = Directory(["a.test"], {f"c{depth + 1}@a.test": 8}, chain)
    assert resolve(directory, "c0@a.test") == []


def test_catch_all_only_for_addresses_that_are_neither_account_nor_alias():
    directory = Directory(["b.test"], {"bob@b.test": 2, "eve@b.test": 3},
                          {"@b.test": ["bob@b.test"], "sales@b.test": ["eve@b.test"]})
    assert resolve(directory, "anything@b.test") == [Target("bob@b.test", 2)]
    assert resolve(directory, "sales@b.test") == [Target("eve@b.test", 3)]
    assert resolve(directory, "eve@b.test") == [Target("eve@b.test", 3)]


def test_may_send_as_own_address_or_an_alias_naming_the_user():
    assert asyncio.run(recipients.may_send_as(DIRECTORY, "ann@a.test", parse_mailbox("ANN@a.test")))
    assert asyncio.run(
            recipients.may_send_as(DIRECTORY, "ann@a.test", parse_mailbox("team@a.test")))
    assert not asyncio.run(
            recipients.may_send_as(DIRECTORY, "bob@b.test", parse_mailbox("team@a.test")))
    # Not through a catch-all: it names bob, but "any@b.test" is no alias of his.
    assert not asyncio.run(
            recipients.may_send_as(DIRECTORY, "bob@b.test", parse_mailbox("any@b.test")))
