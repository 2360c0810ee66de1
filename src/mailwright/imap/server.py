"""IMAP over a socket: the generic session protocol with an ImapSession inside,
plus what only IMAP needs of the connection: streaming large responses, writing
IDLE updates unprompted, and COMPRESS=DEFLATE (RFC 4978)."""

from __future__ import annotations

import asyncio
import zlib

from ..net.connection import Action, SessionProtocol, TLSInfo
from .session import ImapSession

# Inflate at most this much per step: a compressed bomb is never expanded at once.
INFLATE_STEP = 1 << 20


class _DeflateTransport:
    """Compresses everything written, flushing at each write (RFC 4978 §4)."""

    def __init__(self, inner):
        self.inner = inner
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)

    def write(self, data: bytes) -> None:
        self.inner.write(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))

    def writelines(self, pieces) -> None:
        self.inner.write(b"".join(map(self.deflate.compress, pieces)) +
                         self.deflate.flush(zlib.Z_SYNC_FLUSH))

    def __getattr__(self, name):
        return getattr(self.inner, name)


class ImapProtocol(SessionProtocol):
    SHUTTING_DOWN = b"* BYE Server shutting down, try again later\r\n"
    INTERNAL_ERROR = b"* BYE Internal error, closing\r\n"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inflate = None
        self.drained: asyncio.Event | None = None
        self.updating = False              # an IDLE update is being read and written
        self.wake_again = False

    def make_session(self, ip: str, port: int, tls: TLSInfo | None) -> ImapSession:
        s = self.services
        session = ImapSession(ip, tls, s.config, s.store, s.logins, s.events, s.watch)
        session.send = self._send
        session.wake = self._wake
        return session

    def refusal(self, reason: str) -> bytes:
        return f"* BYE {reason}\r\n".encode()

    async def _send(self, pieces: list) -> None:
        """Write part of a long response (buffers, in order: one writev, no joining),
        and wait while the client is not reading."""
        if self.closing:
            raise ConnectionError("connection closed")
        self.transport.writelines(pieces)
        while self.write_paused and not self.closing:
            self.drained = self.drained or asyncio.Event()
            self.drained.clear()
            await self.drained.wait()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.drained is not None:
            self.drained.set()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.drained is not None:
            self.drained.set()

    def _wake(self) -> None:
        if self.updating:
            self.wake_again = True         # changed while being told: tell again
            return
        if self.busy or self.closing or self.session is None:
            return
        # Busy, so input meanwhile waits; the idle timeout is left as it is (not
        # _spawn): news pushed to the client is not the client being active.
        self.busy = self.updating = True
        self._run_now(self._push_updates())

    async def _push_updates(self) -> None:
        """IDLE updates (the store is read, so it is awaited), written unprompted."""
        try:
            while True:
                self.wake_again = False
                out = await self.session.idle_update()
                if self.closing:
                    return
                if out:
                    self.transport.write(out)
                if not self.wake_again:
                    break
        finally:
            self.updating = False
        self.busy = False
        if self._stop_now():               # shutdown came while we were writing news
            self._goodbye()
            return
        if self.session.buffered or self.eof:
            self._pump()                   # input (DONE) that arrived meanwhile

    def _after(self, action: Action) -> None:
        if action is Action.COMPRESS:
            self.transport = _DeflateTransport(self.transport)
            self.inflate = zlib.decompressobj(-15)
            action = Action.NONE
        super()._after(action)

    def data_received(self, data: bytes) -> None:
        if self.inflate is None:
            super().data_received(data)
            return
        try:
            while data and not self.closing:
                chunk = self.inflate.decompress(data, INFLATE_STEP)
                data = self.inflate.unconsumed_tail
                super().data_received(chunk)
        except zlib.error:
            self.transport.write(b"* BYE Invalid compressed data\r\n")
            self._close()
