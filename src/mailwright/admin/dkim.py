"""DKIM key sets of a domain: generate, list, activate, retire.

A set is named (default mwYYYYMM, so rotations sort) and holds two keys, selectors
<name>-rsa and <name>-ed25519 (RFC 8463: receivers that know Ed25519 check that
signature, the rest RSA-2048, RFC 8301). One set per domain signs. Rotation: generate
a new set and publish it; activate it once the records have propagated; retire the old
one once mail signed with it has arrived (its TXT records can go then).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from ..store.directory import DKIMKeyInfo
from ..trust import keys as key_files
from . import validate
from .context import Context
from .errors import Conflict, NotFound, store_refusals


@dataclass(frozen=True)
class KeySet:
    domain: str
    name: str
    keys: list[DKIMKeyInfo]
    directory: Path        # where the private keys are

    @property
    def active(self) -> bool:
        """Mail from the domain is signed with this set."""
        return any(k.active for k in self.keys)


def default_name(now: float) -> str:
    return "mw" + time.strftime("%Y%m", time.gmtime(now))


class DkimKeys:
    def __init__(self, ctx: Context):
        self.store = ctx.store
        self.data_dir = ctx.config.data_dir
        self.clock = ctx.clock

    async def list(self, domain: str | None = None) -> list[DKIMKeyInfo]:
        return await self.store.dkim_keys(await validate.local_domain(self.store, domain)
                                    if domain else None)

    async def generate(self, domain: str, name: str | None = None) -> KeySet:
        """A new key set; it signs at once when the domain has no signing set, otherwise
        it is only published until activated."""
        canonical = await validate.local_domain(self.store, domain)
        now = self.clock()
        name = validate.selector_name(default_name(now) if name is None else name)
        existing = await self.store.dkim_keys(canonical)
        if any(k.name == name for k in existing):
            raise Conflict(f"a key set named {name} already exists for {canonical}: "
                           f"choose another --selector")
        active = not any(k.active for k in existing)
        directory = self._directory(canonical)
        # Key generation (RSA-2048) and the files: off the loop.
        made = await asyncio.to_thread(key_files.write_key_set, directory, canonical, name,
                                       active, now)
        with store_refusals():
            await self.store.add_dkim_keys(made)
        return KeySet(canonical, name, made, directory)

    async def activate(self, domain: str, name: str) -> KeySet:
        """Sign with this set from now on (the others stay published)."""
        canonical = await validate.local_domain(self.store, domain)
        await self._find(canonical, name)
        with store_refusals():
            await self.store.activate_dkim_keys(canonical, name)
        return await self._find(canonical, name)

    async def retire(self, domain: str, name: str) -> KeySet:
        """Delete a set that no longer signs, and its private keys (Conflict while it
        signs)."""
        canonical = await validate.local_domain(self.store, domain)
        retired = await self._find(canonical, name)
        with store_refusals():                    # it still signs
            paths = await self.store.remove_dkim_keys(canonical, name)
        await asyncio.to_thread(key_files.delete_key_files, paths)
        return retired

    async def _find(self, domain: str, name: str) -> KeySet:
        keys = [k for k in await self.store.dkim_keys(domain) if k.name == name]
        if not keys:
            raise NotFound(f"no DKIM keys named {name} for {domain} "
                           f"(see: mailwright dkim list {domain})")
        return KeySet(domain, name, keys, self._directory(domain))

    def _directory(self, domain: str) -> Path:
        return self.data_dir / "dkim" / domain
