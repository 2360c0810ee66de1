"""The directory's names as both backends key them: a domain in canonical form, an
account's lookup key, an alias source (an address, or "@domain" for the catch-all) as
local part, domain and lookup key, an alias's targets; bad input is a StoreError
phrased for the admin."""

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


def account_key(name: str) -> str | None:
    """The lookup key of an account name; None when it is no address (no such account)."""
    try:
        return parse_mailbox(name).key
    except AddressError:
        return None


def alias_targets(targets: list[str]) -> list[str]:
    """An alias's targets as stored: at least one, each a valid address, canonical."""
    if not targets:
        raise StoreError("an alias needs at least one target address")
    try:
        return [str(parse_mailbox(t)) for t in targets]
    except AddressError as e:
        raise StoreError(f"invalid target address: {e}") from None


def merged_targets(existing: list[str], added: list[str]) -> list[str]:
    """An alias's targets after adding some: the existing ones, then each new one not
    among them (addresses compared without case)."""
    have = {t.lower() for t in existing}
    return existing + [t for t in added if t.lower() not in have]
