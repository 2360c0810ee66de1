"""Wake IDLE sessions when their mailbox changes (RFC 2177).

Changes come from SMTP deliveries, other IMAP sessions and other worker
processes, all through the store. A store shared by several nodes tells of them
(store/cluster.py Cluster.watch_mailboxes: PostgreSQL's LISTEN/NOTIFY), whichever
node made them: the watch then only hands the news to the sessions idling on that
mailbox. Otherwise (SQLite, one machine) one task per process polls the watched
mailboxes' (UIDNEXT, HIGHESTMODSEQ) in one indexed query a few times a second, and
only while someone is idling. Cheap for any number of idle sessions, and well inside
RFC 9051's expectation that IDLE reports promptly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..store.cluster import Cluster
from ..store.mailboxes import MailboxStore

log = logging.getLogger("mailwright.imap")

POLL_INTERVAL = 0.2


class MailboxWatch:
    def __init__(self, store: MailboxStore, interval: float = POLL_INTERVAL,
                 changes: Cluster | None = None):
        self.store = store
        self.interval = interval
        self.changes = changes            # told of changes: no polling
        self.listening = False
        self.watchers: dict[int, set[Callable[[], None]]] = {}
        self.versions: dict[int, tuple[int, int] | None] = {}
        self.task: asyncio.Task | None = None

    async def watch(self, mailbox_id: int, wake: Callable[[], None]) -> None:
        if self.changes is not None:
            if not self.listening:
                self.listening = True
                await self.changes.watch_mailboxes(self.changed)
            self.watchers.setdefault(mailbox_id, set()).add(wake)
            return
        if mailbox_id not in self.watchers:
            self.watchers[mailbox_id] = set()
            self.versions[mailbox_id] = (await self.store.mailbox_versions([mailbox_id])).get(
                mailbox_id)
        self.watchers[mailbox_id].add(wake)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, mailbox_id: int, wake: Callable[[], None]) -> None:
        wakers = self.watchers.get(mailbox_id)
        if wakers is None:
            return
        wakers.discard(wake)
        if not wakers:
            del self.watchers[mailbox_id]
            self.versions.pop(mailbox_id, None)

    async def _run(self) -> None:
        while self.watchers:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except Exception:                 # the store is busy or closing: next tick
                log.exception("mailbox watch failed")

    async def poll(self) -> None:
        ids = list(self.watchers)
        current = await self.store.mailbox_versions(ids)
        for mailbox_id in ids:
            now = current.get(mailbox_id)
            if now == self.versions.get(mailbox_id):
                continue
            self.versions[mailbox_id] = now
            for wake in list(self.watchers.get(mailbox_id, ())):
                wake()

    def changed(self, mailbox_id: int | None) -> None:
        """News from the store: this mailbox changed (None: any may have)."""
        ids = list(self.watchers) if mailbox_id is None else [mailbox_id]
        for changed_id in ids:
            for wake in list(self.watchers.get(changed_id, ())):
                wake()

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
