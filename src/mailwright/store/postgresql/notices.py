"""LISTEN: one connection per process hears the cluster's notifications.

Writers do not notify by hand: a trigger (migrations) sends pg_notify when a mailbox's
UIDNEXT or HIGHESTMODSEQ changes, whichever node and whichever code changed it; a
lockout is announced by the statement that sets it (cluster.py). PostgreSQL delivers a
notification once its transaction commits, to every listening session, in commit
order, coalescing identical ones of one transaction.

The connection lives on the pool's loop; subscribers' callbacks are handed to their
own loops. A broken connection is opened again (with a growing pause); notifications
sent meanwhile are lost, so subscribers are then told "anything may have changed"
(the payload None).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .db import Database

log = logging.getLogger("mailwright.store")

MAILBOX = "mailwright_mailbox"        # payload: the mailbox id
LOCKOUT = "mailwright_lockout"        # payload: "<seconds> <key>"
CHANNELS = (MAILBOX, LOCKOUT)

RECONNECT_MAX = 5.0


class Notices:
    def __init__(self, db: Database):
        self.db = db
        self.subscribers: dict[str, list[tuple[asyncio.AbstractEventLoop,
                                               Callable[[str | None], None]]]] = {
            channel: [] for channel in CHANNELS}
        self.task: asyncio.Task | None = None
        self.ready: asyncio.Future | None = None
        db.closing.append(self._close)

    async def subscribe(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """callback(payload) on the caller's loop for every notification on `channel`
        from now on (the LISTEN is in place when this returns)."""
        loop = asyncio.get_running_loop()
        await self.db.run(self._subscribe(channel, loop, callback))

    async def _subscribe(self, channel, loop, callback) -> None:
        self.subscribers[channel].append((loop, callback))
        if self.task is None:
            self.ready = asyncio.get_running_loop().create_future()
            self.task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.shield(self.ready)

    def _tell(self, channel: str, payload: str | None) -> None:
        for loop, callback in self.subscribers[channel]:
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback, payload)

    async def _run(self) -> None:
        pause = 0.1
        first = True
        while True:
            try:
                conn = await self.db.dedicated()
                try:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    if first:
                        self.ready.set_result(None)
                        first = False
                    else:
                        for channel in CHANNELS:    # what was sent while away is lost
                            self._tell(channel, None)
                    pause = 0.1
                    async for notice in conn.notifies():
                        self._tell(notice.channel, notice.payload)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("listening for the cluster's notifications: %s; again in "
                            "%.1f s", e, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)

    async def _close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
