"""Mailbox addresses: RFC 5321 §4.1.2 syntax with the RFC 6531 (SMTPUTF8) extension.

A domain is kept in one canonical form, the lowercase A-label (IDNA 2008), so
that `Example.TEST`, `bücher.test` and `xn--bcher-kva.test` all name the same
domain. Local parts are kept exactly as written; lookups compare them
case-insensitively, as every mainstream MTA does.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

import idna

# RFC 5321 §4.1.2 atext, plus UTF8-non-ascii (RFC 6531 §3.3).
_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+"
_DOT_STRING = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# qtextSMTP / quoted-pairSMTP (RFC 5321 §4.1.2, RFC 6531 §3.3).
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LDH_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

MAX_LOCAL_PART = 64      # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255         # RFC 5321 §4.5.3.1.2


class AddressError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def canonical_domain(domain: str) -> str:
    """The lowercase A-label form of a domain name; AddressError if invalid.

    Cached: the same few domains come in every RCPT, and IDNA is not cheap."""
    domain = domain.rstrip(".") if domain.endswith(".") and len(domain) > 1 else domain
    if not domain or len(domain.encode()) > MAX_DOMAIN:
        raise AddressError("invalid domain length")
    labels = domain.split(".")
    out = []
    for label in labels:
        if label.isascii():
            if not _LDH_LABEL.match(label):
                raise AddressError(f"invalid domain label {label!r}")
            out.append(label.lower())
        else:
            try:
                out.append(idna.encode(label, uts46=True).decode("ascii"))
            except idna.IDNAError as e:
                raise AddressError(f"invalid internationalised label {label!r}: {e}") from None
    return ".".join(out)


def display_domain(domain: str) -> str:
    """The U-label form of a canonical domain, for humans."""
    try:
        return idna.decode(domain)
    except idna.IDNAError:
        return domain


def is_address_literal(domain: str) -> bool:
    return domain.startswith("[") and domain.endswith("]")


def _check_literal(text: str) -> str:
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:])}]"
        return f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError:
        raise AddressError(f"invalid address literal {text!r}") from None


@dataclass(frozen=True)
class Address:
    local_part: str   # as written, quotes removed and quoted-pairs undone
    domain: str       # canonical: lowercase A-label, or a normalised address literal

    def __str__(self) -> str:
        local = self.local_part
        if not _DOT_STRING.fullmatch(local):
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{local}@{self.domain}"

    @property
    def key(self) -> str:
        """Lookup key: local part compared case-insensitively."""
        return f"{self.local_part.lower()}@{self.domain}"

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local_part.isascii()


def parse_mailbox(text: str) -> Address:
    """Parse `local@domain` (RFC 5321 Mailbox); AddressError with a reason."""
    if text.startswith('"'):
        m = _QUOTED.match(text)
        if not m:
            raise AddressError("unterminated or invalid quoted local part")
        raw_local = m.group(0)
        local = re.sub(r"\\(.)", r"\1", raw_local[1:-1])
    else:
        m = _DOT_STRING.match(text)
        if not m:
            raise AddressError("invalid local part")
        raw_local = local = m.group(0)
    rest = text[len(raw_local):]
    if not rest.startswith("@"):
        raise AddressError("missing @domain")
    if len(raw_local.encode()) > MAX_LOCAL_PART:
        raise AddressError("local part longer than 64 octets")
    domain_text = rest[1:]
    if is_address_literal(domain_text):
        return Address(local, _check_literal(domain_text))
    return Address(local, canonical_domain(domain_text))
