"""The POP3 EXPIRE policy (RFC 2449 §6.7): which messages are due for removal.

A domain's policy of N days removes a message from its account's maildrop N days
after its first download over POP3 (N = 0: at the next run after the download).
Messages never downloaded over POP3 are kept, whatever the policy. The server runs
`expire` periodically (app.py); the store only removes what it is told.
"""

from __future__ import annotations

from typing import Protocol

from ..store.directory import Directory
from ..store.mailboxes import MailboxStore, Maildrops

DAY = 86400.0


class _Store(Directory, MailboxStore, Maildrops, Protocol):
    """The parts of the store the policy uses."""


def due_since(days: int, now: float) -> float:
    """Messages first downloaded at or before this time are due."""
    return now - days * DAY


async def expire(store: _Store, now: float) -> int:
    """Remove the messages every domain's policy says are due; how many."""
    removed = 0
    for domain, days in (await store.pop3_expire_policies()).items():
        due = await store.pop3_retrieved_by(domain, due_since(days, now))
        for mailbox_id, uids in due.items():
            removed += len(await store.expunge(mailbox_id, uids))
    return removed
