"""HTTP API keys for PostgreSQL (store/apikeys.py)."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from ..apikeys import ApiKeyRecord
from .db import Database

_COLUMNS = ("id, name, prefix, digest, scope, domains, created, last_used, revoked, "
            "campaigns")


def _record(row: tuple) -> ApiKeyRecord:
    key_id, name, prefix, digest, scope, domains, created, last_used, revoked, campaigns = row
    return ApiKeyRecord(key_id, name, prefix, digest, scope, tuple(domains), created,
                        last_used, revoked, campaigns)


class PostgresApiKeys:
    db: Database

    async def add_api_key(self, name: str, prefix: str, digest: str, scope: str,
                          domains: tuple[str, ...], created: float,
                          campaigns: bool = False) -> ApiKeyRecord:
        row = await self.db.fetchone(
            "INSERT INTO api_keys (name, prefix, digest, scope, domains, created, campaigns) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (name, prefix, digest, scope, Jsonb(list(domains)), created, campaigns))
        assert row is not None
        return ApiKeyRecord(row[0], name, prefix, digest, scope, domains, created, None, None,
                            campaigns)

    async def api_key(self, prefix: str) -> ApiKeyRecord | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM api_keys WHERE prefix=%s",
                                     (prefix,))
        return _record(row) if row else None

    async def api_keys(self) -> list[ApiKeyRecord]:
        return [_record(r) for r in
                await self.db.fetchall(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")]

    async def revoke_api_key(self, key_id: int, when: float) -> ApiKeyRecord | None:
        row = await self.db.fetchone(
            "UPDATE api_keys SET revoked=coalesce(revoked, %s) WHERE id=%s "
            f"RETURNING {_COLUMNS}", (when, key_id))
        return _record(row) if row else None

    async def touch_api_key(self, key_id: int, when: float) -> None:
        await self.db.statement("UPDATE api_keys SET last_used=%s WHERE id=%s",
                                (when, key_id))
