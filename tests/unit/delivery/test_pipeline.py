"""The pipeline runs its stages in order; a refusal stops it and reaches SMTP as the
reply after DATA (RFC 5321 §4.2.5: one reply for the whole message)."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.delivery.pipeline import Pipeline, Rejection, TemporaryFailure
from mailwright.smtp.replies import for_refusal

from .helpers import message


class Note:
    def __init__(self, name: str, seen: list[str], refuse=None):
        self.name, self.seen, self.refuse = name, seen, refuse

    async def run(self, msg) -> None:
        self.seen.append(self.name)
        msg.trace += self.name.encode()
        if self.refuse:
            raise self.refuse


def test_stages_run_in_order_on_the_same_message():
    seen: list[str] = []
    msg = message()
    asyncio.run(Pipeline([Note("a", seen), Note("b", seen), Note("c", seen)]).run(msg))
    assert seen == ["a", "b", "c"]
    assert msg.trace == b"abc"


def test_a_refusal_stops_the_stages_after_it():
    seen: list[str] = []
    refusal = Rejection("5.7.1", "no", reason="spf")
    with pytest.raises(Rejection) as caught:
        asyncio.run(Pipeline([Note("a", seen), Note("b", seen, refusal),
                              Note("c", seen)]).run(message()))
    assert caught.value is refusal
    assert seen == ["a", "b"]


def test_refusal_class_tells_temporary_from_permanent():
    # RFC 3463 §3.1: class 4 persistent transient failure, class 5 permanent failure.
    assert Rejection("5.7.1", "x", reason="r").permanent
    assert not TemporaryFailure("4.3.0", "x").permanent


@pytest.mark.parametrize("status,code", [
    ("5.7.1", 550), ("5.7.23", 550), ("5.7.25", 550),     # policy (RFC 7372 codes too)
    ("4.3.0", 451),                                          # local error in processing
    ("4.2.2", 452),                                          # mailbox full
    ("5.3.4", 552),                                          # message too big
    ("5.6.0", 554),                                          # content
    ("5.9.9", 554), ("4.9.9", 451),                          # otherwise by class
])
def test_smtp_reply_for_a_refusal(status, code):
    reply = for_refusal(TemporaryFailure(status, "the text"))
    assert (reply.code, reply.status, reply.lines) == (code, status, ("the text",))
    assert reply.render() == f"{code} {status} the text\r\n".encode()
