"""POP3 (RFC 1939) for SQLite: the maildrop is the INBOX; UPDATE removes and notes
downloads; which downloaded messages an EXPIRE policy removes is
delivery/pop3_expiry.py's to say."""

from __future__ import annotations

import sqlite3
import time

from ...address import parse_mailbox
from ..base import StoreError
from ..mailboxes import Maildrop, MaildropMessage
from .blobrefs import release_blobs
from .messages import expunge_rows


class SQLitePop3:
    conn: sqlite3.Connection

    async def maildrop(self, account: str) -> Maildrop:
        """The account's INBOX as POP3 sees it at login: UIDVALIDITY and messages by UID."""
        key = parse_mailbox(account).key
        box = self.conn.execute(
            "SELECT b.id, b.uidvalidity FROM mailboxes b JOIN accounts a ON b.account_id=a.id "
            "WHERE a.lookup=? AND b.name='INBOX'", (key,)).fetchone()
        if box is None:
            raise StoreError(f"no INBOX for {account}")
        rows = self.conn.execute("SELECT uid, size, blob FROM messages WHERE mailbox_id=? "
                                 "ORDER BY uid", (box[0],))
        return Maildrop(box[0], box[1], [MaildropMessage(*r) for r in rows])

    async def pop3_update(self, mailbox_id: int, deleted: list[int],
                          retrieved: list[int]) -> int:
        """The UPDATE state (RFC 1939 §6): remove deleted messages, note downloads.
        Returns how many were removed."""
        now = time.time()

        def job(c: sqlite3.Connection) -> tuple[int, list[str]]:
            c.executemany("UPDATE messages SET pop3_retrieved=? WHERE mailbox_id=? AND uid=? "
                          "AND pop3_retrieved IS NULL",
                          [(now, mailbox_id, uid) for uid in retrieved])
            gone, files = expunge_rows(c, mailbox_id, deleted, release_blobs)
            return len(gone), files
        removed, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return removed

    async def pop3_retrieved_by(self, domain: str, when: float) -> dict[int, list[int]]:
        rows = self.conn.execute(
            "SELECT m.mailbox_id, m.uid FROM messages m JOIN mailboxes b ON m.mailbox_id=b.id "
            "JOIN accounts a ON b.account_id=a.id JOIN domains d ON a.domain_id=d.id "
            "WHERE d.name=? AND b.name='INBOX' AND m.pop3_retrieved <= ? "
            "ORDER BY m.mailbox_id, m.uid", (domain, when))
        by_box: dict[int, list[int]] = {}
        for box, uid in rows:
            by_box.setdefault(box, []).append(uid)
        return by_box
