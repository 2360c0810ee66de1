"""The List-Unsubscribe fields of campaign mail (RFC 2369 §3.2, RFC 8058 §3.1).

A campaign copy names its recipient's one-click URL, https://<tracking host>/u/TOKEN;
List-Unsubscribe-Post says a POST of "List-Unsubscribe=One-Click" to it unsubscribes
without further interaction (RFC 8058 §3.1). RFC 8058 §4 requires both fields to be
covered by a DKIM signature: trust/dkim.py SIGNED_HEADERS names them, and the
tracking stage adds them before the signing stage runs.
"""

from __future__ import annotations

from ...message.headers import select_fields

FIELDS = ("List-Unsubscribe", "List-Unsubscribe-Post")


def fields(url: str) -> bytes:
    return (f"List-Unsubscribe: <{url}>\r\n"
            f"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n").encode("ascii")


def replace_fields(message: bytes, url: str) -> bytes:
    """The message with our two fields first and any it had of these names removed
    (RFC 2369 allows one of each; a sender's own would point elsewhere)."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return fields(url) + message
    block = message[:end + 2]
    if b"list-unsubscribe" in block.lower():
        return fields(url) + select_fields(block, list(FIELDS), exclude=True) + \
            message[end + 4:]
    return fields(url) + message
