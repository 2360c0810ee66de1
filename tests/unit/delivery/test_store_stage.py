"""The store stage: local copies and queue rows in one durable delivery; a store failure
is a temporary one for the client (RFC 3463 4.3.0)."""

from __future__ import annotations

import pytest

from mailwright.delivery.pipeline import TemporaryFailure
from mailwright.delivery.stages.store import StoreStage
from mailwright.delivery.stages.trace import TraceStage
from mailwright.store.blobs import Spooled

from .helpers import TLS, Events, local, message, remote, run, spooled


class FakeStore:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.deliveries: list = []

    async def deliver(self, delivery) -> None:
        if self.error:
            raise self.error
        self.deliveries.append(delivery)


def stored(msg, store=None, events=None, queued=None):
    store = store or FakeStore()
    events = events or Events()
    run(TraceStage("mx.example.test"), msg)
    wake = (lambda: queued.append("wake")) if queued is not None else None
    run(StoreStage(store, events.log, wake), msg)
    return store.deliveries[0], events


def test_local_and_remote_recipients_in_one_delivery():
    msg = message(local("bob@example.test", 2), remote("x@far.test", notify="NEVER"),
                  tls=TLS)
    msg.signature = b"DKIM-Signature: s\r\n"
    queued: list = []
    delivery, events = stored(msg, queued=queued)
    assert delivery.message_id == "M1" and delivery.mail_from == "a@origin.test"
    assert [c.account_id for c in delivery.local] == [2]
    assert [(r.address, r.notify) for r in delivery.remote] == [("x@far.test", "NEVER")]
    # RFC 5321 §4.4: Return-Path only where the message is delivered, Received on both.
    assert delivery.local_content == (b"Return-Path: <a@origin.test>\r\n" + msg.trace
                                      + msg.signature + msg.content)
    assert delivery.relay_content == msg.trace + msg.signature + msg.content
    assert len(queued) == 1                    # the queue runner is woken
    assert events.data("accepted") == {
        "ip": "192.0.2.7", "size": len(msg.content), "mail_from": "a@origin.test",
        "rcpts": 2, "local": 1, "remote": 1, "account": "", "domain": "example.test",
        "role": "mx", "tls": "TLSv1.3/TLS_AES_256_GCM_SHA384"}


def test_local_only_leaves_the_queue_alone():
    queued: list = []
    delivery, _ = stored(message(local("bob@example.test", 2)), queued=queued)
    assert delivery.remote == [] and delivery.relay_content == b""
    assert queued == []


def test_the_envelopes_parameters_travel_with_the_queued_copy():
    msg = message(remote("x@far.test"), account="a@origin.test")
    msg.envelope.body, msg.envelope.ret, msg.envelope.envid = "8BITMIME", "HDRS", "E1"
    delivery, _ = stored(msg)
    assert (delivery.body, delivery.ret, delivery.envid, delivery.sender_account) == (
        "8BITMIME", "HDRS", "E1", "a@origin.test")
    assert delivery.local == [] and delivery.local_content == b""


def test_a_spooled_message_reaches_the_store_uncopied(tmp_path):
    content = spooled(tmp_path, b"Subject: big\r\n\r\n" + b"x" * 4000 + b"\r\n")
    delivery, _ = stored(message(local("bob@example.test", 2), remote("x@far.test"),
                                 content=content))
    for copy in (delivery.local_content, delivery.relay_content):
        assert isinstance(copy, Spooled) and copy.file is content.file
        assert copy.length == content.length


def test_a_store_failure_is_a_temporary_failure_and_an_event():
    events = Events()
    msg = message()
    run(TraceStage("mx.example.test"), msg)
    with pytest.raises(TemporaryFailure) as caught:
        run(StoreStage(FakeStore(OSError("disk")), events.log), msg)
    assert (caught.value.status, caught.value.text) == (
        "4.3.0", "Local error in processing, try again later")
    assert events.kinds == ["store-error"]
    assert events.rows[0][2] == "M1"
