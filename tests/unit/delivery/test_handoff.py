"""The SMTP session ends at "message received": what it hands the pipeline, and how a
refusal from the pipeline becomes the one reply after DATA (RFC 5321 §4.2.5)."""

from __future__ import annotations

from mailwright.delivery.pipeline import Pipeline, Rejection, TemporaryFailure
from mailwright.store.blobs import Spooled

from ..session_harness import TLS, Harness
from .helpers import Events


class Keep:
    """A pipeline stage that keeps what it is given, or refuses it."""

    def __init__(self, refusal=None):
        self.refusal = refusal
        self.messages: list = []

    async def run(self, msg) -> None:
        self.messages.append(msg)
        if self.refusal:
            raise self.refusal


def harness(store, stage: Keep, role="mx", tls=False, events=None) -> Harness:
    return Harness(store, role=role, tls=tls, events=events and events.log,
                   pipeline=Pipeline([stage]))


def transaction(h: Harness, text: bytes, *rcpts: str, sender="a@origin.test") -> str:
    h.ehlo()
    assert h.cmd(f"MAIL FROM:<{sender}> BODY=8BITMIME RET=HDRS").startswith("250")
    for rcpt in rcpts:
        assert h.cmd(f"RCPT TO:<{rcpt}> NOTIFY=NEVER").startswith("250")
    assert h.cmd("DATA").startswith("354")
    return h.send(text + b".\r\n")[-1]


def test_the_received_message_carries_envelope_client_and_content(store):
    stage = Keep()
    h = harness(store, stage)
    reply = transaction(h, b"Subject: x\r\n\r\nhi\r\n", "bob@example.test",
                        "team@example.test")
    msg = stage.messages[0]
    assert reply == f"250 2.0.0 OK: queued as {msg.id}"
    envelope = msg.envelope
    assert envelope.reverse_path == "a@origin.test"
    assert (envelope.body, envelope.ret) == ("8BITMIME", "HDRS")
    assert [str(r.address) for r in envelope.recipients] == ["bob@example.test",
                                                            "team@example.test"]
    assert [t.address for t in envelope.recipients[1].targets] == [
        "alice@example.test", "bob@example.test"]
    assert envelope.recipients[0].notify == "NEVER"
    c = msg.client
    assert (c.session_id, c.ip, c.helo, c.esmtp, c.tls, c.account, c.role) == (
        h.session.id, "192.0.2.7", "client.example.net", True, None, None, "mx")
    assert msg.content == b"Subject: x\r\n\r\nhi\r\n" and not msg.long_lines
    assert h.session.accepted == 1


def test_the_authenticated_identity_goes_with_a_submission(store):
    import base64

    from ..conftest import PASSWORD
    stage = Keep()
    h = harness(store, stage, role="submission", tls=True)
    h.ehlo()
    token = base64.b64encode(f"\0alice@example.test\0{PASSWORD}".encode()).decode()
    assert h.cmd("AUTH PLAIN " + token).startswith("235")
    transaction(h, b"Subject: x\r\n\r\n" + b"y" * 1200 + b"\r\n", "x@far.test",
                sender="alice@example.test")
    msg = stage.messages[0]
    assert (msg.client.account, msg.client.tls, msg.client.role) == (
        "alice@example.test", TLS, "submission")
    assert msg.long_lines                         # a line over 998 octets (RFC 5322 §2.1.1)


def test_a_large_message_is_handed_over_spooled(store):
    stage = Keep()
    h = harness(store, stage)
    body = (b"z" * 998 + b"\r\n") * 600           # ~600 KB: past the spool's memory part
    transaction(h, b"Subject: big\r\n\r\n" + body, "bob@example.test")
    content = stage.messages[0].content
    assert isinstance(content, Spooled)
    assert content.head == b"Subject: big\r\n\r\n" and len(content) == 16 + len(body)


def test_a_rejection_is_the_reply_and_a_rejected_event(store):
    events = Events()
    h = harness(store, Keep(Rejection("5.7.1", "rejected by the DMARC policy of origin.test",
                                      reason="dmarc_reject")), events=events)
    reply = transaction(h, b"Subject: x\r\n\r\nhi\r\n", "bob@example.test")
    assert reply == "550 5.7.1 rejected by the DMARC policy of origin.test"
    assert events.data("rejected") == {"ip": "192.0.2.7", "code": 550,
                                       "reason": "dmarc_reject", "mail_from": "a@origin.test"}
    assert h.session.accepted == 0
    # The transaction is over; the session goes on (RFC 5321 §4.1.1.4).
    assert h.cmd("MAIL FROM:<a@origin.test>").startswith("250")


def test_a_temporary_failure_is_a_4xx_reply_without_a_rejected_event(store):
    events = Events()
    h = harness(store, Keep(TemporaryFailure("4.3.0", "Local error in processing, try "
                                                      "again later")), events=events)
    reply = transaction(h, b"Subject: x\r\n\r\nhi\r\n", "bob@example.test")
    assert reply == "451 4.3.0 Local error in processing, try again later"
    assert "rejected" not in events.kinds
