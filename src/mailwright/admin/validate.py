"""Input checks shared by the admin operations: syntax first (Invalid), then existence
(NotFound), so the store is only asked for changes that can succeed."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ..address import Address, AddressError, canonical_domain, display_domain, parse_mailbox
from ..store.base import MailStore
from .errors import Invalid, NotFound

MIN_PASSWORD = 8
MAX_SELECTOR = 50
MAX_TAG = 128


def domain(text: str) -> str:
    """The canonical (lowercase A-label) form of a domain name."""
    try:
        return canonical_domain(text.strip())
    except AddressError as e:
        raise Invalid(f"invalid domain {text!r}: {e}") from None


def address(value: str | Address) -> Address:
    """A mailbox address (RFC 5321 §4.1.2, RFC 6531 for UTF-8)."""
    if isinstance(value, Address):
        return value
    try:
        return parse_mailbox(value.strip())
    except AddressError as e:
        raise Invalid(f"invalid address {value!r}: {e}") from None


def timestamp(name: str, value: str | float | None) -> float | None:
    """A point in time as seconds since the epoch: a number, or an ISO 8601 date or time
    (RFC 3339 profile, e.g. 2026-11-05T12:00:00Z); one without a zone is UTC."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Invalid(f"invalid {name} {value!r}: expected a time")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise Invalid(f"invalid {name} {text!r}: expected seconds since the epoch "
                              "or an ISO 8601 time like 2026-11-05T12:00:00Z") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            value = when.timestamp()
    if not math.isfinite(value):
        raise Invalid(f"invalid {name} {value!r}: expected a finite time")
    return float(value)


def tag(value: str, name: str = "tag") -> str:
    """A message's tag, which is also its campaign's name: 1 to MAX_TAG printable
    characters, kept without surrounding blanks (event search compares the tag it is
    given stripped, so " spring " would be found by no search)."""
    if not (0 < len(value) <= MAX_TAG and value.isprintable() and value.strip()):
        raise Invalid(f"{name}: 1 to {MAX_TAG} printable characters, not {value!r}")
    return value.strip()


def password(text: str) -> str:
    if len(text) < MIN_PASSWORD:
        raise Invalid(f"password too short: use at least {MIN_PASSWORD} characters")
    return text


def quota_size(text: str) -> int:
    """"500M", "2G", "1048576" or "none" (no limit: 0) as octets."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B")
    if t in ("NONE", "0"):
        return 0
    factor = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    if not number.isdigit():
        raise Invalid(f"quota takes a size like 500M, 2G or none, not {text!r}")
    return int(number) * factor


def selector_name(name: str) -> str:
    """A key set name: it becomes the DNS labels <name>-rsa and <name>-ed25519
    (RFC 6376 §3.1 selectors are dot-atoms; we keep to letters, digits and '-')."""
    if not name or len(name) > MAX_SELECTOR or not all(c.isalnum() or c == "-" for c in name):
        raise Invalid(f"invalid selector name {name!r}: letters, digits and '-' only")
    return name


async def existing_domain(store: MailStore, text: str, hint: str = "") -> str:
    """A local domain, for the operations on domains and on their accounts and aliases."""
    name = domain(text)
    if not await store.is_local_domain(name):
        raise NotFound(f"no such domain: {display_domain(name)}" + (f" ({hint})" if hint else ""))
    return name


async def local_domain(store: MailStore, text: str) -> str:
    """A local domain, for the operations that publish for one (DKIM keys, DNS records)."""
    name = domain(text)
    if not await store.is_local_domain(name):
        raise NotFound(f"{text} is not a local domain: mailwright domain add {text}")
    return name


async def existing_account(store: MailStore, value: str | Address) -> Address:
    a = address(value)
    if await store.account_id(str(a)) is None:
        raise NotFound(f"no such account: {a}")
    return a
