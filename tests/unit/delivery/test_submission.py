"""The submission rules (delivery/submission.py) over a real store: every refusal with its
RFC 3463 status and event reason, and what SMTP makes of each (smtp/replies.py), which
must stay the replies RCPT and MAIL always gave."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.delivery import submission
from mailwright.delivery.recipients import Target
from mailwright.delivery.submission import Refused
from mailwright.smtp import replies as R


def recipient(store, text, *, smtputf8=False, authenticated=False, size=0, count=0, limit=100):
    return asyncio.run(submission.recipient(
        store, parse_mailbox(text), smtputf8=smtputf8, authenticated=authenticated,
        size=size, count=count, limit=limit))


def test_a_local_account_an_alias_and_a_remote_address_resolve(store):
    alice = recipient(store, "alice@example.test")
    assert [t.address for t in alice] == ["alice@example.test"] and alice[0].is_local
    team = recipient(store, "team@example.test")
    assert sorted(t.address for t in team) == ["alice@example.test", "bob@example.test"]
    # An alias to a remote address is for everyone (the mx forwards it) ...
    assert recipient(store, "fwd@example.test") == [Target("someone@remote.test")]
    # ... a remote address itself only for an authenticated submitter.
    assert recipient(store, "far@remote.test", authenticated=True) == \
        [Target("far@remote.test")]


@pytest.mark.parametrize("text, kw, refused, reply", [
    ("far@remote.test", {}, submission.RELAY_DENIED, "550 5.7.1 Relaying denied"),
    ("nobody@example.test", {"authenticated": True}, submission.NO_SUCH_USER,
     "550 5.1.1 Recipient address rejected: no such user here"),
    ("Dörte@bücher.test", {}, submission.RECIPIENT_NEEDS_SMTPUTF8,
     "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8 on MAIL FROM"),
    ("alice@example.test", {"count": 3, "limit": 3}, submission.TOO_MANY_RECIPIENTS,
     "452 4.5.3 Too many recipients"),
])
def test_recipient_refusals_and_their_smtp_replies(store, text, kw, refused, reply):
    got = recipient(store, text, **kw)
    assert got == refused
    assert str(R.for_recipient(got)) == reply


def test_refusals_carry_status_text_and_reason():
    assert (submission.RELAY_DENIED.status, submission.RELAY_DENIED.reason) == \
        ("5.7.1", "relay-denied")
    assert submission.NO_SUCH_USER.reason == "unknown-user"
    assert submission.MAILBOX_FULL.reason == "over-quota"
    assert submission.TOO_MANY_RECIPIENTS.reason == "too-many-recipients"
    assert not submission.MAILBOX_FULL.permanent and submission.RELAY_DENIED.permanent


def test_utf8_recipient_is_fine_in_an_smtputf8_transaction(store):
    [target] = recipient(store, "Dörte@bücher.test", smtputf8=True)
    assert target.is_local


def test_a_full_mailbox_is_refused_for_now(ann_stores):
    s, ann = ann_stores
    asyncio.run(s.set_quota("ann@a.test", 1000))
    assert recipient(s, "ann@a.test", size=1000) == [Target("ann@a.test", ann)]
    refused = recipient(s, "ann@a.test", size=1001)
    assert refused == submission.MAILBOX_FULL
    assert str(R.for_recipient(refused)) == "452 4.2.2 Mailbox full; try again later"


def test_the_recipient_checks_come_in_rcpt_order(store):
    # SMTPUTF8 before the limit, the limit before any lookup: an unknown user over the
    # limit is "too many", not "no such user".
    assert recipient(store, "Dörte@bücher.test", count=5, limit=5) == \
        submission.RECIPIENT_NEEDS_SMTPUTF8
    assert recipient(store, "nobody@example.test", count=5, limit=5) == \
        submission.TOO_MANY_RECIPIENTS


def test_sender_syntax():
    assert submission.sender_syntax(None, False) is None                # <>
    assert submission.sender_syntax(parse_mailbox("a@b.test"), False) is None
    refused = submission.sender_syntax(parse_mailbox("ä@b.test"), False)
    assert refused == submission.SENDER_NEEDS_SMTPUTF8
    assert str(R.for_sender(refused)) == \
        "553 5.6.7 Non-ASCII sender address needs the SMTPUTF8 parameter"
    assert submission.sender_syntax(parse_mailbox("ä@b.test"), True) is None


def account_sender(store, account, sender):
    return asyncio.run(submission.account_sender(store, account, parse_mailbox(sender)))


def test_an_account_sends_as_itself_or_an_alias_naming_it(store):
    assert account_sender(store, "alice@example.test", "Alice@example.test") is None
    assert account_sender(store, "alice@example.test", "alice.smith@example.test") is None
    assert account_sender(store, "alice@example.test", "team@example.test") is None
    refused = account_sender(store, "alice@example.test", "bob@example.test")
    assert refused == Refused("5.7.1", "Sender address rejected: not owned by "
                              "alice@example.test", "sender-not-owned")
    assert R.for_sender(refused).code == 553


def domain_sender(store, sender, allowed):
    return asyncio.run(submission.domain_sender(store, parse_mailbox(sender), allowed))


def test_a_domain_sender_uses_any_address_of_its_local_domains(store):
    assert domain_sender(store, "noreply@example.test", None) is None      # no account
    assert domain_sender(store, "x@example.test", {"example.test"}) is None
    assert domain_sender(store, "x@bücher.test", {"xn--bcher-kva.test"}) is None
    outside = domain_sender(store, "x@remote.test", None)
    assert (outside.status, outside.reason) == ("5.7.1", "sender-not-local")
    assert "remote.test is not a local domain" in outside.text
    other = domain_sender(store, "x@example.test", {"xn--bcher-kva.test"})
    assert (other.status, other.reason) == ("5.7.1", "sender-domain-not-allowed")
    assert "(xn--bcher-kva.test)" in other.text
    assert domain_sender(store, "x@example.test", set()).reason == \
        "sender-domain-not-allowed"
