"""Identifiers of sessions and messages, unique per process and across restarts: the
session of whoever hands a message over or reads mail (SMTP, HTTP API, IMAP, POP3
sessions) and the id of the message itself ("queued as").

Each process has its own random tag. It is drawn again in every forked child
(os.register_at_fork): drawn only at import, in the supervisor before it forks
(workers.py), every worker would share it, and two workers' ids could collide."""

from __future__ import annotations

import itertools
import os
import secrets

_PROCESS_TAG = ""
_serial = itertools.count()


def _new_process() -> None:
    global _PROCESS_TAG, _serial
    _PROCESS_TAG = secrets.token_hex(2).upper()
    _serial = itertools.count()


_new_process()
os.register_at_fork(after_in_child=_new_process)


def process_tag() -> str:
    return _PROCESS_TAG


def session_id(kind: str = "") -> str:
    """A session's id: the process tag, `kind` (I for IMAP, P for POP3, none for SMTP
    and the API) and a per-process serial."""
    return f"{_PROCESS_TAG}{kind}{next(_serial):X}"


def message_id(now: float) -> str:
    # Time-ordered and unique: microseconds, a per-process random tag (two nodes,
    # or a restart within the same microsecond) and a per-process counter.
    return f"{int(now * 1_000_000):X}{_PROCESS_TAG}{next(_serial) & 0xFFFF:04X}"
