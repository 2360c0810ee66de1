"""HTTP API keys for SQLite (store/apikeys.py)."""

from __future__ import annotations

import json
import sqlite3

from ..apikeys import ApiKeyRecord

_COLUMNS = ("id, name, prefix, digest, scope, domains, created, last_used, revoked, "
            "campaigns")


def _record(row: tuple) -> ApiKeyRecord:
    key_id, name, prefix, digest, scope, domains, created, last_used, revoked, campaigns = row
    return ApiKeyRecord(key_id, name, prefix, digest, scope, tuple(json.loads(domains)),
                        created, last_used, revoked, bool(campaigns))


class SQLiteApiKeys:
    conn: sqlite3.Connection

    async def add_api_key(self, name: str, prefix: str, digest: str, scope: str,
                          domains: tuple[str, ...], created: float,
                          campaigns: bool = False) -> ApiKeyRecord:
        def job(c: sqlite3.Connection) -> int:
            return c.execute(
                "INSERT INTO api_keys (name, prefix, digest, scope, domains, created, "
                "campaigns) VALUES (?,?,?,?,?,?,?)",
                (name, prefix, digest, scope, json.dumps(list(domains)), created,
                 int(campaigns))).lastrowid
        key_id = await self._write(job)
        return ApiKeyRecord(key_id, name, prefix, digest, scope, domains, created, None, None,
                            campaigns)

    async def api_key(self, prefix: str) -> ApiKeyRecord | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE prefix=?",
                                (prefix,)).fetchone()
        return _record(row) if row else None

    async def api_keys(self) -> list[ApiKeyRecord]:
        return [_record(r) for r in
                self.conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")]

    async def revoke_api_key(self, key_id: int, when: float) -> ApiKeyRecord | None:
        def job(c: sqlite3.Connection) -> tuple | None:
            c.execute("UPDATE api_keys SET revoked=coalesce(revoked, ?) WHERE id=?",
                      (when, key_id))
            return c.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id=?",
                             (key_id,)).fetchone()
        row = await self._write(job)
        return _record(row) if row else None

    async def touch_api_key(self, key_id: int, when: float) -> None:
        await self._write(lambda c: c.execute("UPDATE api_keys SET last_used=? WHERE id=?",
                                              (when, key_id)))
