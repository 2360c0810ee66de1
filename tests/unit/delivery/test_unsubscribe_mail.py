"""The mailto: unsubscribe (RFC 2369 §3.2) on a real store: the address taken at RCPT in
local domains only, with no target; a valid token in the Subject suppresses and is an
`unsubscribed` event with method mailto, in the configured scope; anything
else suppresses nobody and says why."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mailwright.address import parse_mailbox
from mailwright.delivery import submission
from mailwright.delivery.campaigns import keys, tokens
from mailwright.delivery.received import Recipient
from mailwright.delivery.stages.unsubscribe_mail import UnsubscribeMailStage

from ..session_harness import make_config
from .helpers import Events, local, message, run

READER = "Reader@remote.test"


def config(tmp_path, **campaigns):
    cfg = make_config()
    return dataclasses.replace(cfg, data_dir=tmp_path, campaigns=dataclasses.replace(
        cfg.campaigns, **campaigns))


def token(cfg, domain="a.test", tag="spring", message_id="Q1-1") -> str:
    return tokens.encode(keys.ring_for(cfg), tokens.Token(
        tokens.UNSUBSCRIBE, message_id, READER, domain, tag))


def mail(subject: str | None, to="unsubscribe@a.test", account=None):
    field = f"Subject: {subject}\r\n" if subject is not None else ""
    content = f"From: reader@remote.test\r\nTo: {to}\r\n{field}\r\nplease\r\n".encode()
    return message(Recipient(parse_mailbox(to), []), content=content,
                   mail_from="reader@remote.test", account=account)


def entries(store):
    return asyncio.run(store.suppressions(None, None, None, 10, None))


def rcpt(store, address, cfg, authenticated=False):
    return asyncio.run(submission.recipient(
        store, parse_mailbox(address), smtputf8=False, authenticated=authenticated, size=0,
        count=0, limit=10, campaigns=cfg.campaigns))


def test_rcpt_takes_the_address_in_local_domains_with_no_target(ann_store, tmp_path):
    store, _ = ann_store
    cfg = config(tmp_path)
    assert rcpt(store, "unsubscribe@a.test", cfg) == []
    assert rcpt(store, "UNSUBSCRIBE@A.test", cfg) == []
    # not ours: relaying rules as for any address; another local part: no such user
    assert rcpt(store, "unsubscribe@elsewhere.test", cfg) == submission.RELAY_DENIED
    assert rcpt(store, "unsubscribe-me@a.test", cfg) == submission.NO_SUCH_USER
    assert rcpt(store, "unsubscribe@a.test", config(tmp_path, unsubscribe_local_part="")) \
        == submission.NO_SUCH_USER


@pytest.mark.parametrize("scope, campaign", [("domain", None), ("campaign", "spring")])
def test_a_valid_token_suppresses_in_the_configured_scope(ann_store, tmp_path, scope, campaign):
    store, _ = ann_store
    cfg = config(tmp_path, unsubscribe_scope=scope)
    events = Events()
    stage = UnsubscribeMailStage(cfg, store, events.log)
    run(stage, mail(token(cfg)))
    [entry] = entries(store)
    assert (entry.domain, entry.address, entry.campaign, entry.reason, entry.source) == (
        "a.test", "Reader@remote.test", campaign, "unsubscribe", "mailto")
    assert events.rows == [("unsubscribed", "S1", "Q1-1", {
        "rcpt": READER, "domain": "a.test", "method": "mailto", "tag": "spring"})]


def test_a_mail_client_may_add_words_and_encode_the_subject(ann_store, tmp_path):
    store, _ = ann_store
    cfg = config(tmp_path)
    text = token(cfg)
    # RFC 2047 Q-encoding of "Re: <token>" by a client that encodes every subject
    run(UnsubscribeMailStage(cfg, store, Events().log),
        mail(f"=?utf-8?q?Re=3A_{text.replace('_', '=5F')}?="))
    assert len(entries(store)) == 1


@pytest.mark.parametrize("subject, reason", [
    (None, "no-token"),
    ("unsubscribe", "no-token"),
    ("A" * 80, "invalid-token"),
])
def test_no_valid_token_suppresses_nobody(ann_store, tmp_path, subject, reason):
    store, _ = ann_store
    cfg = config(tmp_path)
    events = Events()
    run(UnsubscribeMailStage(cfg, store, events.log), mail(subject))
    assert entries(store) == []
    assert events.rows == [("unsubscribe-ignored", "S1", "M1",
                            {"rcpt": "unsubscribe@a.test", "reason": reason})]


def test_a_tampered_token_or_another_kind_suppresses_nobody(ann_store, tmp_path):
    store, _ = ann_store
    cfg = config(tmp_path)
    good = token(cfg)
    tampered = good[:30] + ("B" if good[30] != "B" else "C") + good[31:]
    pixel = tokens.encode(keys.ring_for(cfg), tokens.Token(
        tokens.OPEN, "Q1-1", READER, "a.test", "spring"))
    events = Events()
    for subject in (tampered, pixel):
        run(UnsubscribeMailStage(cfg, store, events.log), mail(subject))
    assert entries(store) == []
    assert [row[3]["reason"] for row in events.rows] == ["invalid-token"] * 2


def test_a_token_of_a_domain_no_longer_ours(ann_store, tmp_path):
    store, _ = ann_store
    cfg = config(tmp_path)
    events = Events()
    run(UnsubscribeMailStage(cfg, store, events.log), mail(token(cfg, domain="gone.test")))
    assert entries(store) == []
    assert events.rows[0][3]["reason"] == "domain-gone"


def test_other_mail_and_other_recipients_are_left_alone(ann_store, tmp_path):
    store, account = ann_store
    cfg = config(tmp_path)
    events = Events()
    stage = UnsubscribeMailStage(cfg, store, events.log)
    # a real account's mail, even with a token in its subject
    msg = message(local("ann@a.test", account),
                  content=f"Subject: {token(cfg)}\r\n\r\nhi\r\n".encode())
    run(stage, msg)
    assert events.rows == [] and entries(store) == []
    assert msg.envelope.recipients[0].targets       # untouched
