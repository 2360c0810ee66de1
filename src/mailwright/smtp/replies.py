"""SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034, RFC 3463)."""

from __future__ import annotations

from dataclasses import dataclass

from ..delivery.pipeline import Refusal


@dataclass(frozen=True)
class Reply:
    code: int
    status: str            # enhanced status code, "" for the greeting / 354 / 334
    lines: tuple[str, ...]

    def __init__(self, code: int, status: str, *lines: str):
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "lines", lines or ("",))

    def render(self, enhanced: bool = True) -> bytes:
        """Multi-line replies use `code-text` for all but the last line (RFC 5321 §4.2.1)."""
        cache = self.__dict__.setdefault("_wire", {})
        if enhanced not in cache:
            cache[enhanced] = self._render(enhanced)
        return cache[enhanced]

    def _render(self, enhanced: bool) -> bytes:
        out = []
        last = len(self.lines) - 1
        for i, text in enumerate(self.lines):
            sep = " " if i == last else "-"
            prefix = f"{self.status} " if (enhanced and self.status) else ""
            line = f"{self.code}{sep}{prefix}{text}"
            # RFC 4954 §4: a challenge is "334 " + base64, even when empty.
            out.append((line if self.code == 334 else line.rstrip()) + "\r\n")
        return "".join(out).encode("utf-8")


# Replies used from several places. Codes follow RFC 5321 §4.2.2/§4.3.2,
# enhanced codes RFC 3463 / the IANA "SMTP Enhanced Status Codes" registry.
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
BAD_SEQUENCE_HELO = Reply(503, "5.5.1", "Send HELO/EHLO first")
BAD_SEQUENCE_MAIL = Reply(503, "5.5.1", "Need MAIL command first")
NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
TLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")
MAILBOX_FULL = Reply(452, "4.2.2", "Mailbox full; try again later")
NO_SUCH_USER = Reply(550, "5.1.1", "Recipient address rejected: no such user here")
TOO_MANY_RCPTS = Reply(452, "4.5.3", "Too many recipients")
NO_VALID_RCPTS = Reply(554, "5.5.1", "No valid recipients")
NUL_REJECTED = Reply(501, "5.5.2", "NUL characters are not allowed")
BYE = Reply(221, "2.0.0", "Bye")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing connection")


# The basic code for a message refused after DATA (RFC 5321 §4.2.2-§4.2.3), by the
# class and subject of its enhanced status (RFC 3463 §3): mailbox (452: full, RFC 3463
# 4.2.2), mail system (451 local error), message length (552), content (554), policy
# (550). Anything else: 451 temporary, 554 "transaction failed".
_REFUSAL_CODES = {"4.2": 452, "4.3": 451, "5.3": 552, "5.6": 554, "5.7": 550}


def for_refusal(refusal: Refusal) -> Reply:
    """The SMTP reply for a delivery pipeline's protocol-neutral refusal."""
    kind = refusal.status[:3]
    code = _REFUSAL_CODES.get(kind, 554 if refusal.permanent else 451)
    return Reply(code, refusal.status, refusal.text)
