"""Synchronous DNS lookups for pyspf and dkimpy, answered by our asynchronous resolver.

pyspf and dkimpy call a blocking lookup function. They run in worker threads
(their canonicalisation and RSA arithmetic would stall the event loop), and
each lookup they make is handed to the loop that owns the resolver, so every
query goes through one configured, cached resolver — never the system's.
"""

from __future__ import annotations

import asyncio

from ..dns import NXDomain, Resolver, TempFailure

# pyspf reports lookups it cannot complete as TempError; dkimpy as a missing key.
# Both sides need to tell "no record" from "could not ask": LookupFailed is the
# latter, raised to our own wrappers which map it to temperror.


class LookupFailed(Exception):
    """A DNS query that timed out or got SERVFAIL (a temporary error)."""


class Bridge:
    def __init__(self, resolver: Resolver, loop: asyncio.AbstractEventLoop,
                 timeout: float = 10.0):
        self.resolver = resolver
        self.loop = loop
        self.timeout = timeout

    def _run(self, coro):
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:          # waiting here would deadlock the loop
            raise RuntimeError("Bridge lookups must run in a worker thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout)

    def records(self, name: str, rdtype: str) -> tuple:
        """Records of one type ([] for NXDOMAIN or no data); LookupFailed on SERVFAIL or
        timeout."""
        try:
            return self._run(self.resolver.query(name, rdtype)).records
        except NXDomain:
            return ()
        except (TempFailure, TimeoutError) as e:
            raise LookupFailed(str(e)) from None

    def txt(self, name: str) -> list[bytes]:
        """TXT records with their character-strings joined (RFC 6376 §3.6.2.2)."""
        return [b"".join(r.strings) for r in self.records(name, "TXT")]

    def key_record(self, name: str) -> bytes:
        """The one TXT record of a DKIM/ARC key name (RFC 6376 §3.6.2.2); b"" when there
        are none or several (an ambiguous key is no key)."""
        records = self.txt(name.rstrip("."))
        return records[0] if len(records) == 1 else b""
