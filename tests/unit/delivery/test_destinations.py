"""The local/remote split: one copy per local account, one queue row per remote address."""

from __future__ import annotations

from mailwright.address import parse_mailbox
from mailwright.delivery.destinations import destinations
from mailwright.delivery.received import Recipient
from mailwright.delivery.recipients import Target

from .helpers import local, remote


def test_local_accounts_get_one_copy_each():
    # An alias naming alice, and alice herself: alice gets one copy.
    team = Recipient(parse_mailbox("team@example.test"),
                     [Target("alice@example.test", 1), Target("bob@example.test", 2)])
    where = destinations([team, local("alice@example.test", 1)])
    assert [c.account_id for c in where.local] == [1, 2]
    assert where.remote == []


def test_remote_addresses_once_each_case_insensitively_with_their_dsn_parameters():
    where = destinations([remote("x@far.test", notify="NEVER"),
                    remote("X@FAR.test", notify="SUCCESS", orcpt="rfc822;X@FAR.test"),
                    remote("y@near.test")])
    assert [(r.address, r.notify, r.orcpt) for r in where.remote] == [
        ("X@FAR.test", "SUCCESS", "rfc822;X@FAR.test"), ("y@near.test", None, None)]
    assert where.local == []


def test_mixed_recipients_split():
    fwd = Recipient(parse_mailbox("fwd@example.test"),
                    [Target("someone@remote.test"), Target("bob@example.test", 2)],
                    notify="FAILURE")
    where = destinations([fwd])
    assert [c.account_id for c in where.local] == [2]
    assert [(r.address, r.notify) for r in where.remote] == [("someone@remote.test",
                                                               "FAILURE")]


def test_a_junk_recipient_files_its_accounts_copy_in_junk_first():
    where = destinations([local("a@example.test", 1, junk=True), local("b@example.test", 2)])
    boxes = {c.account_id: c.mailboxes for c in where.local}
    assert boxes[1][0] == "Junk" and boxes[1][-1] == "INBOX"
    assert boxes[2] == ("INBOX",)
