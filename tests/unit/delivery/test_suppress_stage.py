"""The suppression stage on a real store: our user's remote recipients on the sending
domain's list are dropped with a `suppressed` event, the rest goes on; mail from other
servers and local copies are never touched; a message left with no recipient is
accepted and nothing is stored."""

from __future__ import annotations

import asyncio

from mailwright.delivery import suppression
from mailwright.delivery.stages.store import StoreStage
from mailwright.delivery.stages.suppress import SuppressStage

from .helpers import Events, local, message, remote, run


def suppress(store, address, campaign=None, reason="unsubscribe"):
    asyncio.run(suppression.add(store, "a.test", address, campaign=campaign, reason=reason,
                                source="test", created=1.0))


def test_suppressed_remote_targets_are_dropped_with_an_event(ann_store):
    store, ann = ann_store
    suppress(store, "Gone@Far.test")
    events = Events()
    msg = message(remote("gone@far.test"), remote("kept@far.test"), local("ann@a.test", ann),
                  account="ann@a.test")
    run(SuppressStage(store, events.log), msg)
    targets = [t.address for r in msg.envelope.recipients for t in r.targets]
    assert targets == ["kept@far.test", "ann@a.test"]
    assert msg.suppressed == {"gone@far.test": "unsubscribe"}
    assert events.rows == [("suppressed", "S1", "M1", {
        "rcpt": "gone@far.test", "domain": "a.test", "reason": "unsubscribe",
        "stage": "submission"})]


def test_campaign_entries_apply_to_that_campaign_only(ann_store):
    store, _ = ann_store
    suppress(store, "x@far.test", campaign="spring")
    for tag, left in ((None, ["x@far.test"]), ("autumn", ["x@far.test"]), ("spring", [])):
        events = Events()
        msg = message(remote("x@far.test"), account="ann@a.test")
        msg.tag = tag
        run(SuppressStage(store, events.log), msg)
        assert [t.address for r in msg.envelope.recipients for t in r.targets] == left
        if not left:
            assert events.data("suppressed")["tag"] == "spring"


def test_mail_from_other_servers_is_never_checked(ann_store):
    store, _ = ann_store
    suppress(store, "x@far.test")
    events = Events()
    msg = message(remote("x@far.test"))          # no account: the mx role
    run(SuppressStage(store, events.log), msg)
    assert [t.address for r in msg.envelope.recipients for t in r.targets] == ["x@far.test"]
    assert events.rows == []


def test_every_recipient_suppressed_is_accepted_and_nothing_stored(ann_store):
    store, _ = ann_store
    suppress(store, "x@far.test")
    events = Events()
    msg = message(remote("x@far.test"), account="ann@a.test")
    run(SuppressStage(store, events.log), msg)
    run(StoreStage(store, events.log), msg)
    accepted = events.data("accepted")
    assert (accepted["rcpts"], accepted["local"], accepted["remote"]) == (1, 0, 0)
    assert asyncio.run(store.queue_messages()) == []


def test_hard_bounces():
    hard = ["550 5.1.1 no such user", "550 5.1.10 null MX", "553 5.1.3 bad syntax",
            "550 5.2.1 mailbox disabled", "551 5.1.6 moved"]
    soft = ["552 5.2.2 mailbox full", "554 5.7.1 spam", "550 5.1.8 bad sender",
            "451 4.1.1 try later", "550 5.0.0 Returned to the sender by the mail administrator",
            "421 4.4.2 timeout (gave up after 5 days)", "550 no such user"]
    assert [r for r in hard if suppression.is_hard_bounce(r)] == hard
    assert [r for r in soft if suppression.is_hard_bounce(r)] == []
