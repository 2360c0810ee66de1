"""Delivery policy over the store's lookups: recipient resolution with aliases and the
catch-all (RFC 5321 §3.9.1: an alias replaces the address with its targets), who may
send as whom, Junk routing, the RCPT quota decision (RFC 9208 §4) and the POP3
EXPIRE policy (RFC 2449 §6.7)."""

from __future__ import annotations

import asyncio
import time

from mailwright.address import parse_mailbox
from mailwright.delivery import local, pop3_expiry, quota, recipients
from mailwright.delivery.recipients import Target
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.mailboxes import Quota
from mailwright.store.messages import Delivery, LocalCopy
from mailwright.store.sqlite import SQLiteStore


class Directory:
    """The lookups recipient resolution needs, from dicts: the policy needs no database."""

    def __init__(self, domains, accounts, aliases):
        self.domains, self.accounts, self.aliases = set(domains), accounts, aliases

    def is_local_domain(self, domain):
        return domain in self.domains

    def find_account(self, address):
        return self.accounts.get(address.key)

    def alias(self, address):
        return self.aliases.get(address.key)

    def catch_all(self, domain):
        return self.aliases.get(f"@{domain}")


def resolve(directory, text):
    return recipients.resolve(directory, parse_mailbox(text))


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
    assert recipients.may_send_as(DIRECTORY, "ann@a.test", parse_mailbox("ANN@a.test"))
    assert recipients.may_send_as(DIRECTORY, "ann@a.test", parse_mailbox("team@a.test"))
    assert not recipients.may_send_as(DIRECTORY, "bob@b.test", parse_mailbox("team@a.test"))
    # Not through a catch-all: it names bob, but "any@b.test" is no alias of his.
    assert not recipients.may_send_as(DIRECTORY, "bob@b.test", parse_mailbox("any@b.test"))


def test_junk_routing_one_copy_per_account():
    ann, bob = Target("ann@a.test", 1), Target("bob@b.test", 2)
    far = Target("far@remote.test")
    copies = local.local_copies([(False, [ann, far]), (True, [ann, bob]), (False, [bob])])
    assert copies == [LocalCopy(1, ("Junk", "INBOX")), LocalCopy(2, ("Junk", "INBOX"))]
    assert local.local_copies([(False, [ann])]) == [LocalCopy(1, ("INBOX",))]


def store_with_account(tmp_path):
    s = SQLiteStore(tmp_path, render_views=fetch_views)
    s.add_domain("a.test")
    s.add_account(parse_mailbox("ann@a.test"), "password-1")
    return s, s.account_id("ann@a.test")


def inbox_and_junk(s, account):
    return [len(s.message_states(box.id)) if box else None
            for box in (s.mailbox(account, "INBOX"), s.mailbox(account, "Junk"))]


def test_quarantined_copy_lands_in_junk_or_inbox_without_one(tmp_path):
    s, ann = store_with_account(tmp_path)
    try:
        def deliver(copies):
            asyncio.run(s.deliver(Delivery(message_id="J", mail_from="", local=copies,
                                           local_content=b"Subject: j\r\n\r\nx\r\n")))
        deliver(local.local_copies([(True, [Target("ann@a.test", ann)])]))
        assert inbox_and_junk(s, ann) == [0, 1]
        asyncio.run(s.delete_mailbox(ann, "Junk"))           # the user removed it
        deliver(local.local_copies([(True, [Target("ann@a.test", ann)])]))
        assert inbox_and_junk(s, ann) == [1, None]
    finally:
        s.close()


def test_rcpt_quota_decision(tmp_path):
    assert Quota(used=90, limit=100, messages=3).exceeded_by(11)
    assert not Quota(used=90, limit=100, messages=3).exceeded_by(10)
    assert not Quota(used=10 ** 9, limit=0, messages=3).exceeded_by(1)    # 0: no limit
    s, ann = store_with_account(tmp_path)
    try:
        target = [Target("ann@a.test", ann), Target("far@remote.test")]
        assert not quota.any_over_quota(s, target, 10 ** 9)
        s.set_quota("ann@a.test", 1000)
        assert not quota.any_over_quota(s, target, 1000)
        assert quota.any_over_quota(s, target, 1001)
        assert not quota.any_over_quota(s, [Target("far@remote.test")], 1001)
    finally:
        s.close()


def test_pop3_expire_removes_only_downloaded_messages_past_the_policy(tmp_path):
    s, ann = store_with_account(tmp_path)
    try:
        for i in range(3):
            asyncio.run(s.deliver(Delivery(message_id=f"E{i}", mail_from="",
                                           local=[LocalCopy(ann)],
                                           local_content=f"Subject: {i}\r\n\r\n".encode())))
        drop = s.maildrop("ann@a.test")
        uids = [m.uid for m in drop.messages]
        asyncio.run(s.pop3_update(drop.mailbox_id, [], uids[:2]))      # two downloaded
        now = time.time()
        assert asyncio.run(pop3_expiry.expire(s, now + 400 * 86400)) == 0   # no policy
        s.set_pop3_expire("a.test", 0)           # RFC 2449 §6.7: EXPIRE 0, at once
        assert s.pop3_retrieved_by("a.test", now - 60) == {}
        assert s.pop3_retrieved_by("a.test", pop3_expiry.due_since(0, now + 1)) == \
            {drop.mailbox_id: uids[:2]}
        assert asyncio.run(pop3_expiry.expire(s, now + 1)) == 2
        assert [m.uid for m in s.maildrop("ann@a.test").messages] == uids[2:]
    finally:
        s.close()
