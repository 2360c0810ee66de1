"""Web admin accounts and sessions for PostgreSQL (store/admins.py)."""

from __future__ import annotations

from psycopg import errors

from ..admins import AdminSessionRecord, AdminUserRecord
from ..base import StoreError
from .db import Database

_USER = "id, name, password_hash, created, last_login"


class PostgresAdmins:
    db: Database

    async def add_admin_user(self, name: str, password_hash: str,
                             created: float) -> AdminUserRecord:
        try:
            row = await self.db.fetchone(
                "INSERT INTO admin_users (name, password_hash, created) VALUES (%s, %s, %s) "
                "RETURNING id", (name, password_hash, created))
        except errors.UniqueViolation:
            raise StoreError(f"an admin named {name!r} already exists") from None
        assert row is not None
        return AdminUserRecord(row[0], name, password_hash, created, None)

    async def admin_user(self, name: str) -> AdminUserRecord | None:
        row = await self.db.fetchone(f"SELECT {_USER} FROM admin_users WHERE name=%s",
                                     (name,))
        return AdminUserRecord(*row) if row else None

    async def admin_users(self) -> list[AdminUserRecord]:
        # COLLATE "C": by code point, as SQLite orders text, whatever the database's.
        return [AdminUserRecord(*r) for r in await self.db.fetchall(
            f'SELECT {_USER} FROM admin_users ORDER BY name COLLATE "C"')]

    async def set_admin_password(self, name: str, password_hash: str) -> bool:
        # A new password ends every session of the admin, in the same statement.
        row = await self.db.fetchone(
            "WITH u AS (UPDATE admin_users SET password_hash=%s WHERE name=%s RETURNING id), "
            "s AS (DELETE FROM admin_sessions WHERE admin_id IN (SELECT id FROM u)) "
            "SELECT count(*) FROM u", (password_hash, name))
        return bool(row and row[0])

    async def remove_admin_user(self, name: str) -> bool:
        # Sessions go with the admin (ON DELETE CASCADE).
        return await self.db.statement("DELETE FROM admin_users WHERE name=%s", (name,)) > 0

    async def add_admin_session(self, digest: str, admin_id: int, csrf: str,
                                when: float) -> None:
        await self.db.statement(
            "WITH s AS (INSERT INTO admin_sessions (digest, admin_id, csrf, created, "
            "last_seen) VALUES (%(digest)s, %(admin)s, %(csrf)s, %(when)s, %(when)s)) "
            "UPDATE admin_users SET last_login=%(when)s WHERE id=%(admin)s",
            {"digest": digest, "admin": admin_id, "csrf": csrf, "when": when})

    async def admin_session(self, digest: str) -> AdminSessionRecord | None:
        row = await self.db.fetchone(
            "SELECT s.digest, s.admin_id, u.name, s.csrf, s.created, s.last_seen "
            "FROM admin_sessions s JOIN admin_users u ON u.id=s.admin_id WHERE s.digest=%s",
            (digest,))
        return AdminSessionRecord(*row) if row else None

    async def touch_admin_session(self, digest: str, when: float) -> None:
        await self.db.statement("UPDATE admin_sessions SET last_seen=%s WHERE digest=%s",
                                (when, digest))

    async def remove_admin_sessions(self, *, digest: str | None = None,
                                    created_before: float | None = None,
                                    seen_before: float | None = None) -> int:
        return await self.db.statement(
            "DELETE FROM admin_sessions WHERE digest=%s::text OR created<%s::float8 "
            "OR last_seen<%s::float8", (digest, created_before, seen_before))
