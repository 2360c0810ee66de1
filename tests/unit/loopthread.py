"""An event loop in a background thread, for code that runs in worker threads and
hands its DNS lookups to the loop (mailwright.trust.dnsbridge)."""

from __future__ import annotations

import asyncio
import threading

from mailwright.dns import Resolver
from mailwright.trust.dnsbridge import Bridge


class LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def bridge(self, dns_port: int, timeout: float = 1.0) -> Bridge:
        return Bridge(Resolver(["127.0.0.1"], port=dns_port, timeout=timeout), self.loop)

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
