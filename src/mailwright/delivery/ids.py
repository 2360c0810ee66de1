"""Identifiers of sessions and messages, unique per process and across restarts: the
session of whoever hands a message over (an SMTP connection, an HTTP API request) and
the id of the message itself ("queued as")."""

from __future__ import annotations

import itertools
import secrets

_PROCESS_TAG = secrets.token_hex(2).upper()
_serial = itertools.count()


def session_id() -> str:
    return f"{_PROCESS_TAG}{next(_serial):X}"


def message_id(now: float) -> str:
    # Time-ordered and unique: microseconds, a per-process random tag (two nodes,
    # or a restart within the same microsecond) and a per-process counter.
    return f"{int(now * 1_000_000):X}{_PROCESS_TAG}{next(_serial) & 0xFFFF:04X}"
