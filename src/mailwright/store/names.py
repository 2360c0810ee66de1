"""The directory's names as both backends key them: a domain in canonical form, an
alias source (an address, or "@domain" for the catch-all) as local part, domain and
lookup key; bad input is a StoreError phrased for the admin."""

from __future__ import annotations

from ..address import AddressError, canonical_domain, parse_mailbox
from .base import StoreError


def domain_name(text: str) -> str:
    try:
        return canonical_domain(text.strip())
    except AddressError as e:
        raise StoreError(f"invalid domain {text!r}: {e}") from None


def alias_source(source: str) -> tuple[str, str, str]:
    """(local part, domain, lookup key) of an alias source; '@domain' is the catch-all."""
    if source.startswith("@"):
        domain = domain_name(source[1:])
        return "", domain, f"@{domain}"
    try:
        a = parse_mailbox(source)
    except AddressError as e:
        raise StoreError(f"invalid alias address {source!r}: {e}") from None
    return a.local_part, a.domain, a.key
