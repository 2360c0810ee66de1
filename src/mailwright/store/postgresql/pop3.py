"""POP3 (RFC 1939) for PostgreSQL: the maildrop is the INBOX; UPDATE removes and notes
downloads; which downloaded messages an EXPIRE policy removes is
delivery/pop3_expiry.py's to say. As store/sqlite/pop3.py."""

from __future__ import annotations

import time

from ...address import parse_mailbox
from ..base import StoreError
from ..mailboxes import Maildrop, MaildropMessage
from .blobrefs import release_blobs
from .db import Cursor, Database
from .mailbox_messages import expunge_rows


class PostgresPop3:
    db: Database

    async def maildrop(self, account: str) -> Maildrop:
        """The account's INBOX as POP3 sees it at login: UIDVALIDITY and messages by UID
        (one statement: the messages of one snapshot)."""
        key = parse_mailbox(account).key
        rows = await self.db.fetchall(
            "SELECT b.id, b.uidvalidity, m.uid, m.size, m.blob FROM accounts a "
            "JOIN mailboxes b ON b.account_id=a.id AND b.name='INBOX' "
            "LEFT JOIN messages m ON m.mailbox_id=b.id WHERE a.lookup=%s ORDER BY m.uid",
            (key,))
        if not rows:
            raise StoreError(f"no INBOX for {account}")
        return Maildrop(rows[0][0], rows[0][1],
                        [MaildropMessage(*r[2:]) for r in rows if r[2] is not None])

    async def pop3_update(self, mailbox_id: int, deleted: list[int],
                          retrieved: list[int]) -> int:
        """The UPDATE state (RFC 1939 §6): remove deleted messages, note downloads.
        Returns how many were removed."""
        now = time.time()

        async def job(cur: Cursor) -> int:
            if retrieved:
                await cur.execute("UPDATE messages SET pop3_retrieved=%s WHERE mailbox_id=%s "
                                  "AND uid = ANY(%s) AND pop3_retrieved IS NULL",
                                  (now, mailbox_id, retrieved))
            gone, blobs = await expunge_rows(cur, mailbox_id, deleted)
            await release_blobs(cur, blobs)
            return len(gone)
        return await self.db.transaction(job)

    async def pop3_retrieved_by(self, domain: str, when: float) -> dict[int, list[int]]:
        rows = await self.db.fetchall(
            "SELECT m.mailbox_id, m.uid FROM messages m JOIN mailboxes b ON m.mailbox_id=b.id "
            "JOIN accounts a ON b.account_id=a.id JOIN domains d ON a.domain_id=d.id "
            "WHERE d.name=%s AND b.name='INBOX' AND m.pop3_retrieved <= %s "
            "ORDER BY m.mailbox_id, m.uid", (domain, when))
        by_box: dict[int, list[int]] = {}
        for box, uid in rows:
            by_box.setdefault(box, []).append(uid)
        return by_box
