"""Idle timeouts for many connections with one timer.

A connection waiting for input registers its deadline; one task wakes every
`tick` seconds and expires those past it. Cheaper than arming and cancelling
a timer (asyncio.wait_for) around every read, which costs a timer handle, a
task and a cancellation per command. Resolution is one tick, which is plenty
for timeouts measured in minutes (RFC 5321 §4.5.3.2).
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Expirable(Protocol):
    def expire(self) -> None: ...


class IdleTimeouts:
    def __init__(self, tick: float = 1.0):
        self.tick = tick
        self.deadlines: dict[Expirable, float] = {}
        self._task: asyncio.Task | None = None

    def watch(self, conn: Expirable, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.deadlines[conn] = loop.time() + timeout
        if self._task is None:
            self._task = loop.create_task(self._run())

    def unwatch(self, conn: Expirable) -> None:
        self.deadlines.pop(conn, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            expired = [c for c, deadline in self.deadlines.items() if deadline <= now]
            for conn in expired:
                del self.deadlines[conn]
                conn.expire()

    def close(self) -> None:
        if self._task:
            self._task.cancel()
            self._task = None
