"""Recipient resolution: what one RCPT address stands for, and whom a user may send as.

The store only looks things up (an account, an alias, a domain's catch-all); the
rules are here:
- an account is its own target;
- an alias stands for its targets, expanded again while they are local aliases
  (up to MAX_ALIAS_DEPTH levels, each address once, so loops end);
- a domain's catch-all ("@domain") applies only to addresses of that domain that
  are neither account nor alias;
- a target outside our domains is remote (queued for relay).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..address import Address, AddressError, parse_mailbox
from ..store.directory import Directory

log = logging.getLogger("mailwright.delivery")

MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True)
class Target:
    """Where one RCPT ends up after alias expansion."""
    address: str                   # final address
    account_id: int | None = None  # set for a local account, None for a remote address

    @property
    def is_local(self) -> bool:
        return self.account_id is not None


async def resolve(directory: Directory, address: Address) -> list[Target] | None:
    """Targets for a local address ([] if unknown), None if the domain is not local."""
    # The common case first: one indexed query finds an account, which exists only
    # in a local domain.
    account = await directory.find_account(address)
    if account is not None:
        return [Target(str(address), account)]
    if not await directory.is_local_domain(address.domain):
        return None
    targets: dict[str, Target] = {}
    await _expand(directory, address, targets, set(), 0)
    return list(targets.values())


async def _expand(directory: Directory, address: Address, out: dict[str, Target],
            seen: set[str], depth: int) -> None:
    if address.key in seen or depth > MAX_ALIAS_DEPTH:
        return
    seen.add(address.key)
    if not await directory.is_local_domain(address.domain):
        out.setdefault(address.key, Target(str(address)))
        return
    account = await directory.find_account(address)
    if account is not None:
        out.setdefault(address.key, Target(str(address), account))
        return
    targets = await directory.alias(address)
    if targets is None:
        targets = await directory.catch_all(address.domain)
    for text in targets or ():
        try:
            await _expand(directory, parse_mailbox(text), out, seen, depth + 1)
        except AddressError:
            log.warning("alias target %r of %s is invalid; skipped", text, address)


async def may_send_as(directory: Directory, account: str, address: Address) -> bool:
    """A user may send as their own address, or as an alias that names them among its
    targets (not through a catch-all, and not through further aliases)."""
    owner = parse_mailbox(account)
    if owner.key == address.key:
        return True
    targets = await directory.alias(address)
    return any(t.lower() == owner.key or _key_of(t) == owner.key for t in targets or ())


def _key_of(text: str) -> str:
    try:
        return parse_mailbox(text).key
    except AddressError:
        return text.lower()
