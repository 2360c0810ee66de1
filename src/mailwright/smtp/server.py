"""The socket side of SMTP: an asyncio protocol that feeds an SmtpSession.

Thin on purpose: read bytes, hand them to the session, write what it answers,
upgrade to TLS or close when it says so, and enforce timeouts and flow control.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from ..config import Listener
from ..net.limits import ConnectionLimiter
from ..net.timeouts import IdleTimeouts
from .replies import Reply
from .session import Action, Connection, SmtpSession
from .trace import TLSInfo

log = logging.getLogger("mailwright.smtp")

SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later")

# Stop reading from a client that pipelines faster than we answer.
READ_HIGH_WATER = 1 << 20
READ_LOW_WATER = 1 << 16


def tls_info(ssl_object) -> TLSInfo | None:
    if ssl_object is None:
        return None
    name, _, bits = ssl_object.cipher()
    return TLSInfo(ssl_object.version(), name, bits)


class SmtpProtocol(asyncio.Protocol):
    def __init__(self, services, listener: Listener, limiter: ConnectionLimiter,
                 tls_context: ssl.SSLContext, timeouts: IdleTimeouts):
        self.services = services
        self.listener = listener
        self.limiter = limiter
        self.tls_context = tls_context
        self.timeouts = timeouts
        self.transport: asyncio.Transport | None = None
        self.session: SmtpSession | None = None
        self.ip = ""
        self.pending = False                 # input arrived since the last process()
        self.waiter: asyncio.Future | None = None
        self.expired = False
        self.stopping = False
        self.lost = False
        self.eof = False
        self.read_paused = False
        self.write_resumed: asyncio.Future | None = None

    # --- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip = peer[0]
        refused = self.limiter.acquire(self.ip)
        if refused:
            self.services.events.emit("refused", ip=self.ip, role=self.listener.role,
                                      reason=refused)
            self.ip = ""
            transport.write(Reply(421, "4.7.0", refused).render())
            transport.close()
            return
        s = self.services
        s.connections.add(self)
        self.session = SmtpSession(
            Connection(self.listener.role, peer[0], peer[1],
                       tls_info(transport.get_extra_info("ssl_object"))),
            s.config, s.store, s.lockout, s.events)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data: bytes) -> None:
        if self.session is None:
            return
        self.session.receive(data)
        self._wake()
        if self.session.framer.buffered > READ_HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        # Keep a TCP transport open for the replies still to be written; a TLS
        # transport cannot be half-closed (and asyncio warns if asked to).
        return self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()
        if self.write_resumed and not self.write_resumed.done():
            self.write_resumed.set_result(None)
        if self.ip:
            self.limiter.release(self.ip)
            self.ip = ""
        self.services.connections.discard(self)

    def pause_writing(self) -> None:
        self.write_resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.write_resumed and not self.write_resumed.done():
            self.write_resumed.set_result(None)
        self.write_resumed = None

    # --- waiting for input ---------------------------------------------------
    def _wake(self) -> None:
        self.pending = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def shutdown(self) -> None:
        """Server stopping: end the session after the command in hand."""
        self.stopping = True
        self._wake()

    def expire(self) -> None:
        """Called by IdleTimeouts when the client kept us waiting too long."""
        self.expired = True
        self._wake()

    async def _wait_for_input(self, timeout: float) -> bool:
        """Wait for input; False when the idle timeout expired first."""
        self.waiter = asyncio.get_running_loop().create_future()
        self.timeouts.watch(self, timeout)
        try:
            await self.waiter
        finally:
            self.waiter = None
            self.timeouts.unwatch(self)
        return not self.expired

    # --- the session loop ----------------------------------------------------
    async def _write(self, data: bytes) -> None:
        if data and not self.lost:
            self.transport.write(data)
            # Only yields when the client does not read its replies.
            if self.write_resumed is not None:
                await self.write_resumed

    async def run(self) -> None:
        session = self.session
        try:
            await self._write(session.greeting())
            while not self.lost:
                self.pending = False
                out, action = await session.process()
                await self._write(out)
                if self.read_paused and session.framer.buffered < READ_LOW_WATER:
                    self.read_paused = False
                    self.transport.resume_reading()
                if action is Action.CLOSE:
                    break
                if action is Action.START_TLS:
                    if not await self._start_tls():
                        break
                    continue
                if self.stopping and not session.closed:
                    await self._write(SHUTTING_DOWN.render())
                    break
                if self.pending:
                    continue
                if self.eof or self.lost:
                    break
                if not await self._wait_for_input(session.timeout):
                    await self._write(session.timed_out())
                    break
        except Exception:  # noqa: BLE001 - never a traceback to the peer; log it here
            log.exception("session %s failed", session.id)
            await self._write(Reply(421, "4.3.0", "Internal error, closing").render())
        finally:
            session.disconnected()
            if not self.lost:
                self.transport.close()

    async def _start_tls(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            self.transport = await loop.start_tls(
                self.transport, self, self.tls_context, server_side=True,
                ssl_handshake_timeout=self.services.config.limits.tls_handshake_timeout)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as e:
            log.info("session %s: TLS handshake failed: %s", self.session.id, e)
            return False
        if self.transport is None:
            return False
        self.session.tls_started(tls_info(self.transport.get_extra_info("ssl_object")))
        return True
