"""Tracking tokens: what a pixel, a rewritten link or an unsubscribe URL carries.

A token is self-contained, so no table of links is kept: base64url (RFC 4648 §5, no
padding) of MAC || payload, the payload being the kind, the key id, the message's
queue id, the recipient, the sending domain, the campaign name and, for a click, the
original URL, joined by LF (none of them can hold one but the URL, which comes last).
The MAC is HMAC-SHA256 over the payload (keys.py), so every field, the URL included, is
exactly what we wrote: a token changed in any octet, or signed by a key we do not
have, decodes to None and its endpoint answers 404, never a redirect.
"""

from __future__ import annotations

import binascii
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from .keys import MAC_SIZE, KeyRing

OPEN, CLICK, UNSUBSCRIBE = "o", "c", "u"
_KINDS = (OPEN, CLICK, UNSUBSCRIBE)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{24,8192}")   # the decoder would skip others


@dataclass(frozen=True)
class Token:
    kind: str               # OPEN | CLICK | UNSUBSCRIBE
    message_id: str         # the queue id of the recipient's copy (events' message id)
    rcpt: str               # the envelope recipient
    domain: str             # the sending domain (whose suppression list)
    tag: str                # the campaign name ("" when none was given)
    url: str = ""           # CLICK: the link's target, exactly as it was


def encode(ring: KeyRing, token: Token) -> str:
    fields = [token.kind, ring.current, token.message_id, token.rcpt, token.domain, token.tag]
    if token.kind == CLICK:
        fields.append(token.url)
    return _text(ring, "\n".join(fields).encode())


def click_encoder(ring: KeyRing, message_id: str, rcpt: str, domain: str, tag: str
                  ) -> Callable[[str], str]:
    """encode() of the CLICK tokens of one copy, url -> token: the fields before the URL
    joined once (a newsletter has hundreds of links, each a token)."""
    head = "\n".join((CLICK, ring.current, message_id, rcpt, domain, tag, "")).encode()
    return lambda url: _text(ring, head + url.encode())


# RFC 4648 §5: base64url is base64 with "-" and "_" for "+" and "/".
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _text(ring: KeyRing, payload: bytes) -> str:
    raw = ring.mac(payload) + payload
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=") \
        .decode("ascii")


def decode(ring: KeyRing, text: str, kind: str) -> Token | None:
    """The token of `kind` that `text` is, or None: not base64url, not ours, another
    kind, or signed by an unknown key."""
    if not _BASE64URL.fullmatch(text):
        return None
    try:
        # The alphabet was checked above: straight to the C decoder (RFC 4648 §5).
        raw = binascii.a2b_base64(text.encode("ascii").translate(_FROM_URLSAFE)
                                  + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    mac, payload = raw[:MAC_SIZE], raw[MAC_SIZE:]
    try:
        fields = payload.decode().split("\n", 6)
    except UnicodeDecodeError:
        return None
    if len(fields) < 6 or fields[0] != kind or kind not in _KINDS:
        return None
    expected = ring.mac(payload, fields[1])
    if expected is None or not hmac.compare_digest(mac, expected):
        return None
    if (kind == CLICK) != (len(fields) == 7):
        return None
    return Token(kind, fields[2], fields[3], fields[4], fields[5],
                 fields[6] if kind == CLICK else "")
