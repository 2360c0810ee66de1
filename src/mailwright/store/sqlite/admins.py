"""Web admin accounts and sessions for SQLite (store/admins.py)."""

from __future__ import annotations

import sqlite3

from ..admins import AdminSessionRecord, AdminUserRecord
from ..base import StoreError

_USER = "id, name, password_hash, created, last_login"


class SQLiteAdmins:
    conn: sqlite3.Connection

    async def add_admin_user(self, name: str, password_hash: str,
                             created: float) -> AdminUserRecord:
        def job(c: sqlite3.Connection) -> int:
            try:
                return c.execute("INSERT INTO admin_users (name, password_hash, created) "
                                 "VALUES (?,?,?)", (name, password_hash, created)).lastrowid
            except sqlite3.IntegrityError:
                raise StoreError(f"an admin named {name!r} already exists") from None
        admin_id = await self._write(job)
        return AdminUserRecord(admin_id, name, password_hash, created, None)

    async def admin_user(self, name: str) -> AdminUserRecord | None:
        row = self.conn.execute(f"SELECT {_USER} FROM admin_users WHERE name=?",
                                (name,)).fetchone()
        return AdminUserRecord(*row) if row else None

    async def admin_users(self) -> list[AdminUserRecord]:
        return [AdminUserRecord(*r) for r in
                self.conn.execute(f"SELECT {_USER} FROM admin_users ORDER BY name")]

    async def set_admin_password(self, name: str, password_hash: str) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT id FROM admin_users WHERE name=?", (name,)).fetchone()
            if row is None:
                return False
            c.execute("UPDATE admin_users SET password_hash=? WHERE id=?",
                      (password_hash, row[0]))
            c.execute("DELETE FROM admin_sessions WHERE admin_id=?", (row[0],))
            return True
        return await self._write(job)

    async def remove_admin_user(self, name: str) -> bool:
        # Sessions go with the admin (ON DELETE CASCADE).
        return await self._write(lambda c: c.execute(
            "DELETE FROM admin_users WHERE name=?", (name,)).rowcount > 0)

    async def add_admin_session(self, digest: str, admin_id: int, csrf: str,
                                when: float) -> None:
        def job(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO admin_sessions (digest, admin_id, csrf, created, "
                      "last_seen) VALUES (?,?,?,?,?)", (digest, admin_id, csrf, when, when))
            c.execute("UPDATE admin_users SET last_login=? WHERE id=?", (when, admin_id))
        await self._write(job)

    async def admin_session(self, digest: str) -> AdminSessionRecord | None:
        row = self.conn.execute(
            "SELECT s.digest, s.admin_id, u.name, s.csrf, s.created, s.last_seen "
            "FROM admin_sessions s JOIN admin_users u ON u.id=s.admin_id WHERE s.digest=?",
            (digest,)).fetchone()
        return AdminSessionRecord(*row) if row else None

    async def touch_admin_session(self, digest: str, when: float) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE admin_sessions SET last_seen=? WHERE digest=?", (when, digest)))

    async def remove_admin_sessions(self, *, digest: str | None = None,
                                    created_before: float | None = None,
                                    seen_before: float | None = None) -> int:
        def job(c: sqlite3.Connection) -> int:
            return c.execute(
                "DELETE FROM admin_sessions WHERE digest=? OR created<? OR last_seen<?",
                (digest, created_before, seen_before)).rowcount
        return await self._write(job)
