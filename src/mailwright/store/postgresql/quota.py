"""Quota (RFC 9208) for PostgreSQL: the account's limit, its usage, and the limit held
in the transaction that writes (IMAP APPEND / COPY), as store/sqlite/quota.py."""

from __future__ import annotations

from ...address import parse_mailbox
from ..base import StoreError
from ..mailboxes import OverQuota, Quota
from .db import Cursor, Database

_USAGE = ("SELECT coalesce(sum(m.size), 0), count(*) FROM messages m "
          "JOIN mailboxes b ON m.mailbox_id=b.id WHERE b.account_id=%s")


class PostgresQuota:
    db: Database

    async def quota(self, account_id: int) -> Quota:
        row = await self.db.fetchone(
            f"SELECT (SELECT quota_bytes FROM accounts WHERE id=%s), u.* FROM ({_USAGE}) u",
            (account_id, account_id))
        limit, used, count = row
        return Quota(int(used), limit or 0, count)

    async def set_quota(self, account: str, limit: int) -> None:
        key = parse_mailbox(account).key
        if not await self.db.execute("UPDATE accounts SET quota_bytes=%s WHERE lookup=%s",
                                     (limit, key)):
            raise StoreError(f"no such account: {account}")

    async def quota_limit(self, account_id: int) -> int:
        row = await self.db.fetchone("SELECT quota_bytes FROM accounts WHERE id=%s",
                                     (account_id,))
        return (row[0] or 0) if row else 0


async def check_quota(cur: Cursor, account_id: int, size: int) -> None:
    """The account's limit holds in the transaction that writes (RFC 9208 §5.1). The
    account row stays locked until it ends, so two nodes' writes to one account with a
    limit take turns: each sums a usage that includes what the other committed (the
    sum is a statement of its own, after the lock). Accounts without a limit lock
    nothing."""
    await cur.execute("SELECT quota_bytes FROM accounts WHERE id=%s AND quota_bytes>0 "
                      "FOR NO KEY UPDATE", (account_id,))
    row = await cur.fetchone()
    if not row:
        return
    await cur.execute(_USAGE, (account_id,))
    used, count = await cur.fetchone()
    if Quota(int(used), row[0], count).exceeded_by(size):
        raise OverQuota()
