"""The replies our SMTP server sends from several places (the Reply type is
smtpreply.py's), and the replies for delivery's protocol-neutral refusals: a pipeline's
(after DATA) and the submission rules' (at MAIL and RCPT)."""

from __future__ import annotations

from ..delivery.pipeline import Refusal
from ..delivery.submission import Refused
from ..smtpreply import Reply

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


# RFC 5321 §4.2.2-§4.2.3 at MAIL: a sender refused for what it is, 553 "mailbox name not
# allowed" (class 5), 451 (class 4).
def for_sender(refused: Refused) -> Reply:
    return Reply(553 if refused.permanent else 451, refused.status, refused.text)


# At RCPT, by the subject of the enhanced status (RFC 3463 §3): mailbox full and too
# many recipients 452 (RFC 5321 §4.5.3.1.10), a mailbox name that cannot be used (the
# SMTPUTF8 one) 553; otherwise 550 (unknown, relaying, policy) or 451.
_RECIPIENT_CODES = {"4.2": 452, "4.5": 452, "5.6": 553}


def for_recipient(refused: Refused) -> Reply:
    code = _RECIPIENT_CODES.get(refused.status[:3], 550 if refused.permanent else 451)
    return Reply(code, refused.status, refused.text)
