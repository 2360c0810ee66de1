"""What the IMAP session and its command groups share: states, the NO exception,
the tagged response line and which state each command needs (RFC 9051 §3, §6)."""

from __future__ import annotations

import enum

from ..net.connection import Action

# What the session gives for one input (a command, a literal, an IDLE DONE): the
# response bytes and what the transport does next (net/connection.py).
Answer = tuple[bytes, Action]


class State(enum.Enum):
    NOT_AUTHENTICATED = 1
    AUTHENTICATED = 2
    SELECTED = 3
    LOGOUT = 4


class No(Exception):
    """A command that cannot be carried out: tagged NO [code] text."""

    def __init__(self, text: str, code: str = ""):
        super().__init__(text)
        self.code = code


_AUTH = (State.AUTHENTICATED, State.SELECTED)
_SEL = (State.SELECTED,)
# The states each command is valid in (RFC 9051 §6); absent: any state.
COMMAND_STATES = {
    "STARTTLS": (State.NOT_AUTHENTICATED,), "LOGIN": (State.NOT_AUTHENTICATED,),
    "AUTHENTICATE": (State.NOT_AUTHENTICATED,),
    **{c: _AUTH for c in ("ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME",
                          "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE",
                          "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT",
                          "SETQUOTA", "COMPRESS")},
    **{c: _SEL for c in ("CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE",
                         "COPY", "MOVE", "CHECK", "SORT", "THREAD")},
}


def tagged(tag: str, status: str, text: str, code: str = "") -> bytes:
    """The tagged response ending a command: tag, OK | NO | BAD, [code] and text."""
    code = f"[{code}] " if code else ""
    return f"{tag} {status} {code}{text}\r\n".encode()
