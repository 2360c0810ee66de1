"""The directory on PostgreSQL with two nodes changing it at once: an address becomes
an account or an alias, never both, and a domain removal counts what was added."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.base import StoreError


@pytest.fixture
def two_nodes(pg_dsn, tmp_path):
    from mailwright.store.postgresql import PostgresStore
    stores = [PostgresStore(pg_dsn, tmp_path / f"node{i}", render_views=fetch_views)
              for i in range(2)]
    yield stores
    for s in stores:
        s.close()


def test_an_address_becomes_an_account_or_an_alias_never_both(two_nodes):
    one, two = two_nodes
    asyncio.run(one.add_domain("shop.test"))

    async def race(i: int) -> list:
        address = f"user{i}@shop.test"
        return await asyncio.gather(one.add_account(parse_mailbox(address), "password-1"),
                                    two.add_alias(address, ["x@far.test"]),
                                    return_exceptions=True)
    for i in range(5):
        outcomes = asyncio.run(race(i))
        refused = [o for o in outcomes if isinstance(o, StoreError)]
        assert len(refused) == 1 and outcomes.count(None) == 1, outcomes
        account = asyncio.run(one.account_id(f"user{i}@shop.test"))
        alias = asyncio.run(two.alias(parse_mailbox(f"user{i}@shop.test")))
        assert (account is None) != (alias is None)


def test_the_same_account_added_on_two_nodes_at_once_is_made_once(two_nodes):
    one, two = two_nodes
    asyncio.run(one.add_domain("shop.test"))

    async def race():
        return await asyncio.gather(
            *(node.add_account(parse_mailbox("same@shop.test"), "password-1")
              for node in (one, two)), return_exceptions=True)
    outcomes = asyncio.run(race())
    assert outcomes.count(None) == 1
    assert [str(o) for o in outcomes if o is not None] == ["account same@shop.test already exists"]
    [info] = asyncio.run(two.list_accounts("shop.test"))
    assert info.address == "same@shop.test"
    account_id = asyncio.run(one.account_id("same@shop.test"))
    assert len(asyncio.run(one.mailboxes(account_id))) == 6


def test_removing_a_domain_counts_an_account_added_at_the_same_time(two_nodes):
    one, two = two_nodes
    asyncio.run(one.add_domain("shop.test"))

    async def race():
        return await asyncio.gather(one.add_account(parse_mailbox("a@shop.test"), "pw-123456"),
                                    two.remove_domain("shop.test"), return_exceptions=True)
    added, removed = asyncio.run(race())
    # Either the account came first and the removal refuses, or the domain went first
    # and the account finds no domain: never an account left without its domain.
    if added is None:
        assert isinstance(removed, StoreError) and "1 account" in str(removed)
        assert asyncio.run(one.account_id("a@shop.test")) is not None
    else:
        assert removed is None and "no such domain" in str(added)
        assert asyncio.run(one.list_domains()) == []


def test_an_account_added_again_gets_greater_uidvalidities(two_nodes):
    # RFC 9051 §2.3.1.1: a mailbox name used again must not reuse its UIDVALIDITY,
    # even when the account is removed and added again within the same second.
    one, two = two_nodes
    asyncio.run(one.add_domain("shop.test"))
    seen = []
    for node in (one, two, one):
        asyncio.run(node.add_account(parse_mailbox("a@shop.test"), "password-1"))
        account = asyncio.run(node.account_id("a@shop.test"))
        values = [b.uidvalidity for b in asyncio.run(node.mailboxes(account))]
        assert len(set(values)) == len(values)
        seen.append(values)
        asyncio.run(node.remove_account(parse_mailbox("a@shop.test")))
    assert min(seen[1]) > max(seen[0]) and min(seen[2]) > max(seen[1])
