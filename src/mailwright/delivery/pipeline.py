"""The delivery pipeline: an ordered list of stages, each with one method.

A stage may edit the message (its content, the header fields it adds, where its
recipients go) or refuse it by raising a Refusal. Refusals carry a protocol-neutral
status (an RFC 3463 enhanced status code and a text); the protocol that received the
message turns that into its own answer (SMTP: smtp/replies.py `for_refusal`). The
stages that run for each listener role are chosen in assemble.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .received import ReceivedMessage


class Refusal(Exception):
    """The message is not taken, for every recipient (after DATA there is one answer
    for all of them: RFC 5321 §4.2.5)."""

    def __init__(self, status: str, text: str):
        super().__init__(f"{status} {text}")
        self.status = status      # RFC 3463: class 4 temporary, class 5 permanent
        self.text = text

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


class Rejection(Refusal):
    """Refused for what the message is (a failed authentication check, a policy).
    The receiving protocol logs it as a "rejected" event with `reason`."""

    def __init__(self, status: str, text: str, reason: str):
        super().__init__(status, text)
        self.reason = reason


class TemporaryFailure(Refusal):
    """Not refused for what it is: we could not take it now (the stage that hit the
    trouble logged it). RFC 3463 class 4: the client tries again later."""


class Stage(Protocol):
    async def run(self, msg: ReceivedMessage) -> None:
        """Do this stage's one job on msg; raise a Refusal to stop the message."""


class Pipeline:
    def __init__(self, stages: Sequence[Stage]):
        self.stages = tuple(stages)

    async def run(self, msg: ReceivedMessage) -> None:
        """Every stage in order; a Refusal ends the run and reaches the caller."""
        for stage in self.stages:
            await stage.run(msg)
