"""Quota (RFC 9208): the account's limit, its usage, and the limit held in the
transaction that writes (IMAP APPEND / COPY). When SMTP refuses a recipient for
quota is delivery/quota.py's decision."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...address import parse_mailbox
from ..base import StoreError
from ..mailboxes import OverQuota, Quota


class SQLiteQuota:
    conn: sqlite3.Connection
    _write: Any

    async def quota(self, account_id: int) -> Quota:
        limit = self.conn.execute("SELECT quota_bytes FROM accounts WHERE id=?",
                                  (account_id,)).fetchone()
        used, count = usage(self.conn, account_id)
        return Quota(used, limit[0] if limit else 0, count)

    async def set_quota(self, account: str, limit: int) -> None:
        key = parse_mailbox(account).key

        def job(c: sqlite3.Connection) -> None:
            if c.execute("UPDATE accounts SET quota_bytes=? WHERE lookup=?",
                         (limit, key)).rowcount == 0:
                raise StoreError(f"no such account: {account}")
        await self._write(job)

    async def quota_limit(self, account_id: int) -> int:
        row = self.conn.execute("SELECT quota_bytes FROM accounts WHERE id=?",
                                (account_id,)).fetchone()
        return (row[0] or 0) if row else 0


def usage(c: sqlite3.Connection, account_id: int) -> tuple[int, int]:
    row = c.execute("SELECT coalesce(sum(m.size), 0), count(*) FROM messages m "
                    "JOIN mailboxes b ON m.mailbox_id=b.id WHERE b.account_id=?",
                    (account_id,)).fetchone()
    return row[0], row[1]


def check_quota(c: sqlite3.Connection, account_id: int, size: int) -> None:
    """The account's limit holds in the transaction that writes (RFC 9208 §5.1)."""
    row = c.execute("SELECT quota_bytes FROM accounts WHERE id=?", (account_id,)).fetchone()
    if not row or not row[0]:
        return
    used, count = usage(c, account_id)
    if Quota(used, row[0], count).exceeded_by(size):
        raise OverQuota()
