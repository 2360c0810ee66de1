"""HTTP API keys as the store keeps them: a name, a scope, and the SHA-256 of the token
(never the token). What a scope allows is admin/apikeys.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    name: str
    prefix: str                  # the token's public part
    digest: str                  # hex SHA-256 of the token
    scope: str
    domains: tuple[str, ...]
    created: float
    last_used: float | None
    revoked: float | None
    campaigns: bool = False      # its mail is tracked campaign mail (issue 17)


class ApiKeyStore(Protocol):
    async def add_api_key(self, name: str, prefix: str, digest: str, scope: str,
                          domains: tuple[str, ...], created: float,
                          campaigns: bool = False) -> ApiKeyRecord:
        ...

    async def api_key(self, prefix: str) -> ApiKeyRecord | None:
        """The key whose token starts with prefix, revoked or not."""
        ...

    async def api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        ...

    async def revoke_api_key(self, key_id: int, when: float) -> ApiKeyRecord | None:
        """Mark the key revoked (None: no such key). A revoked key stays listed."""
        ...

    async def touch_api_key(self, key_id: int, when: float) -> None:
        """Record that the key was used at `when`."""
        ...
