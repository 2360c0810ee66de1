"""Aliases: an address (or "@domain", the domain's catch-all) that forwards to targets."""

from __future__ import annotations

from ..store.directory import AliasInfo
from . import validate
from .context import Context
from .errors import Invalid, NotFound, store_refusals


def _source(text: str) -> tuple[str, str]:
    """(domain, lookup key) of an alias source: an address, or "@domain" for the catch-all."""
    text = text.strip()
    if text.startswith("@"):
        domain = validate.domain(text[1:])
        return domain, f"@{domain}"
    a = validate.address(text)
    return a.domain, a.key


def _key(info: AliasInfo) -> str:
    return info.source if info.source.startswith("@") else validate.address(info.source).key


class Aliases:
    def __init__(self, ctx: Context):
        self.store = ctx.store

    async def add(self, source: str, targets: list[str]) -> AliasInfo:
        """Add targets to the alias (created if new); returns it with all its targets.
        Targets may be local or remote addresses."""
        domain, key = _source(source)
        if not targets:
            raise Invalid("an alias needs at least one target address")
        addresses = [str(validate.address(t)) for t in targets]
        await validate.existing_domain(self.store, domain,
                                 hint=f"add it with: mailwright domain add {domain}")
        with store_refusals():                    # an account has that address
            await self.store.add_alias(source.strip(), addresses)
        return await self._find(domain, key, source)

    async def list(self, domain: str | None = None) -> list[AliasInfo]:
        return await self.store.list_aliases(validate.domain(domain) if domain else None)

    async def remove(self, source: str) -> AliasInfo:
        domain, key = _source(source)
        alias = await self._find(domain, key, source)
        with store_refusals():
            await self.store.remove_alias(source.strip())
        return alias

    async def _find(self, domain: str, key: str, source: str) -> AliasInfo:
        for alias in await self.store.list_aliases(domain):
            if _key(alias) == key:
                return alias
        raise NotFound(f"no such alias: {source} (see: mailwright alias list {domain})")
