"""Local domains: add, list, remove, and their POP3 EXPIRE policy."""

from __future__ import annotations

from dataclasses import dataclass

from ..address import display_domain
from . import validate
from .context import Context
from .errors import Invalid, store_refusals


@dataclass(frozen=True)
class Domain:
    name: str              # canonical: lowercase A-label (RFC 5890)
    display: str           # as people read it: U-labels

    @classmethod
    def of(cls, name: str) -> Domain:
        return cls(name, display_domain(name))


@dataclass(frozen=True)
class Pop3Expiry:
    """RFC 2449 §6.7 EXPIRE: days a message downloaded over POP3 is kept; None: until the
    client deletes it."""
    domain: Domain
    days: int | None


class Domains:
    def __init__(self, ctx: Context):
        self.store = ctx.store

    async def add(self, name: str) -> Domain:
        canonical = validate.domain(name)
        with store_refusals():                    # already exists
            await self.store.add_domain(canonical)
        return Domain.of(canonical)

    async def get(self, name: str) -> Domain:
        return Domain.of(await validate.existing_domain(self.store, name))

    async def list(self) -> list[Domain]:
        return [Domain.of(name) for name in await self.store.list_domains()]

    async def remove(self, name: str, force: bool = False) -> Domain:
        """Without force, only a domain with no accounts and no aliases (Conflict);
        with force, its accounts, their mail and its aliases go too."""
        canonical = await validate.existing_domain(self.store, name)
        with store_refusals():                    # still has accounts or aliases
            await self.store.remove_domain(canonical, force=force)
        return Domain.of(canonical)

    async def set_pop3_expire(self, name: str, days: int | None) -> Pop3Expiry:
        if days is not None and days < 0:
            raise Invalid(f"POP3 expiry takes a number of days (0 or more) or none, not {days}")
        canonical = await validate.existing_domain(self.store, name)
        with store_refusals():
            await self.store.set_pop3_expire(canonical, days)
        return Pop3Expiry(Domain.of(canonical), days)
