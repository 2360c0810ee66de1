"""The mailto: unsubscribe of campaign mail (RFC 2369 §3.2, RFC 6068):
<mailto:LOCAL@SENDING-DOMAIN?subject=TOKEN> beside the https one-click URL.

LOCAL is `[campaigns] unsubscribe_local_part` ("unsubscribe"), reserved in every local
domain: a RCPT to it is accepted whether or not an account, alias or catch-all exists
there (delivery/submission.py), and the message is stored nowhere (its recipient has
no target); stages/unsubscribe_mail.py reads the token and unsubscribes.

Why the token rides in the subject: it is the very token of the /u/ URL (HMAC-signed,
tokens.py), 100 and more characters, and a local part holds at most 64 octets (RFC
5321 §4.5.3.1.1), so it cannot be a subaddress. A mail program that follows the
mailto: sends a message with that subject (RFC 6068 §2: hfields); base64url needs no
percent-encoding in a URI and has no space a folding client could break it at. The
sending domain is the address's domain because its MX is this server (we host it)
and the recipient sees who they are leaving.
"""

from __future__ import annotations

import re

from ...address import Address
from ...config import CampaignSettings
from ...message.headers import decode_words, parse_headers
from ...store.directory import Directory
from . import tokens
from .keys import KeyRing
from .tokens import Token

# Where a token may stand in a subject: a run of base64url characters (a mail program
# may add "Re:", a translation of "unsubscribe", or encode the subject, RFC 2047).
_CANDIDATE = re.compile(r"[A-Za-z0-9_-]{24,8192}")


def uri(settings: CampaignSettings, domain: str, token: str) -> str | None:
    """The mailto: URI for an unsubscribe token of mail from `domain`; None when
    [campaigns] unsubscribe_local_part is off."""
    local = settings.unsubscribe_local_part
    return f"mailto:{local}@{domain}?subject={token}" if local else None


def is_address(settings: CampaignSettings, address: Address) -> bool:
    """Is this the unsubscribe local part (of any domain; is_local_domain says whether
    it is ours)?"""
    local = settings.unsubscribe_local_part
    return bool(local) and address.local_part.lower() == local


async def consumes(directory: Directory, settings: CampaignSettings,
                   address: Address) -> bool:
    """Is `address` an unsubscribe address we take: the local part in a local domain."""
    return is_address(settings, address) and \
        await directory.is_local_domain(address.domain)


def token_in(ring: KeyRing, content: bytes) -> tuple[Token | None, str]:
    """The valid unsubscribe token in a message's Subject, or None and why not:
    "no-token" (nothing shaped like one) or "invalid-token" (changed, or not signed by
    our keys)."""
    end = content.find(b"\r\n\r\n")
    header = content if end < 0 else content[:end + 2]
    subject = parse_headers(header, 0, len(header)).value("subject") or ""
    candidates = _CANDIDATE.findall(decode_words(subject))
    for text in candidates:
        token = tokens.decode(ring, text, tokens.UNSUBSCRIBE)
        if token is not None:
            return token, ""
    return None, "invalid-token" if candidates else "no-token"
