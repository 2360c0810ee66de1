"""DKIM signing of submissions (RFC 6376) and ARC sealing of forwards (RFC 8617): what is
signed, and where the fields land in each copy."""

from __future__ import annotations

from mailwright.delivery.stages.sign import SealStage, SignStage
from mailwright.delivery.stages.trace import TraceStage

from .helpers import local, message, remote, run

RELAY_TEXT = b"Subject: re-encoded\r\n\r\nshort lines\r\n"


class FakeSigner:
    """Stands in for trust/outbound.py OutboundSigner: a field naming what it covered."""

    def __init__(self) -> None:
        self.signed: list[bytes] = []
        self.sealed: list[tuple[bytes, list[str]]] = []

    async def sign(self, content, mail_from: str) -> bytes:
        self.signed.append(bytes(content))
        return f"DKIM-Signature: {len(self.signed)} for {mail_from}\r\n".encode()

    async def seal(self, content, domains: list[str]) -> bytes:
        self.sealed.append((bytes(content), domains))
        return b"ARC-Seal: i=1\r\n"


def submitted(*rcpts, relay_text=None):
    msg = message(*rcpts, account="a@origin.test")
    msg.relay_text = relay_text
    return run(TraceStage("mail.example.test"), msg)


def test_submission_signed_once_when_every_copy_carries_the_same_text():
    signer = FakeSigner()
    msg = run(SignStage(signer), submitted(local("b@example.test", 2), remote("x@far.test")))
    assert signer.signed == [msg.content]            # the text, without trace fields
    assert msg.local_copy() == (msg.return_path + msg.trace
                                + b"DKIM-Signature: 1 for a@origin.test\r\n" + msg.content)
    assert msg.relay_copy() == (msg.trace + b"DKIM-Signature: 1 for a@origin.test\r\n"
                                + msg.content)


def test_a_reencoded_relay_text_gets_its_own_signature():
    # RFC 6376 §5.3: sign what is sent; the local copy keeps its original text.
    signer = FakeSigner()
    msg = run(SignStage(signer), submitted(local("b@example.test", 2), remote("x@far.test"),
                                           relay_text=RELAY_TEXT))
    assert signer.signed == [msg.content, RELAY_TEXT]
    assert msg.relay_copy() == msg.trace + b"DKIM-Signature: 2 for a@origin.test\r\n" \
        + RELAY_TEXT
    assert msg.local_copy().endswith(b"DKIM-Signature: 1 for a@origin.test\r\n"
                                     + msg.content)


def test_only_the_relay_text_is_signed_when_nothing_is_stored_here():
    signer = FakeSigner()
    msg = run(SignStage(signer), submitted(remote("x@far.test"), relay_text=RELAY_TEXT))
    assert signer.signed == [RELAY_TEXT] and msg.signature == b""


def test_mail_from_elsewhere_is_not_signed():
    signer = FakeSigner()
    msg = run(SignStage(signer), message(remote("x@far.test")))
    assert signer.signed == [] and msg.signature == b""


def test_a_checked_forward_is_sealed_over_what_is_sent():
    signer = FakeSigner()
    msg = message(local("b@example.test", 2), remote("someone@remote.test"))
    msg.checked = True
    run(TraceStage("mx.example.test"), msg)
    run(SealStage(signer), msg)
    covered, domains = signer.sealed[0]
    assert covered == msg.trace + msg.content       # RFC 8617 §5.1: the message as sent
    assert domains == ["example.test", "remote.test"]
    assert msg.relay_copy() == b"ARC-Seal: i=1\r\n" + covered
    assert msg.local_copy() == msg.return_path + msg.trace + msg.content   # not sealed


def test_unchecked_or_local_only_mail_is_not_sealed():
    signer = FakeSigner()
    run(SealStage(signer), message(remote("someone@remote.test")))     # no verdict
    checked_local = message(local("b@example.test", 2))
    checked_local.checked = True
    run(SealStage(signer), checked_local)
    assert signer.sealed == []
