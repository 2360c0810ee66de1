"""The signature of a webhook delivery: HMAC-SHA256 with the endpoint's secret over the
timestamp, a dot and the exact body, sent as

    Mailwright-Signature: t=<unix time>,v1=<hex digest>

The timestamp is signed with the body, so a captured request cannot be replayed later
than the receiver's tolerance (README "Webhooks" shows `verify` to copy; a unit test
runs that copy).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Mailwright-Signature"
TOLERANCE = 300            # seconds a receiver accepts between our clock and its own


def digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Mailwright-Signature header's value."""
    return f"t={timestamp},v1={digest(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, tolerance: int = 300,
           now: float | None = None) -> bool:
    """True if `header` (Mailwright-Signature) signs `body` with `secret`, made within
    `tolerance` seconds of now. `body` is the request body as received, before any
    JSON parsing. Self-contained (standard library only), so receivers copy it as is."""
    try:
        fields = dict(item.strip().split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"].encode("ascii")
    except (ValueError, KeyError, UnicodeEncodeError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest().encode("ascii"), given)
