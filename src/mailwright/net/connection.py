"""The socket side of every line protocol (SMTP, POP3, later IMAP): an asyncio
protocol that feeds a sans-I/O session.

Thin on purpose: hand received bytes to the session, write what it answers,
upgrade to TLS or close when it says so, and enforce connection limits, idle
timeouts, flow control and shutdown.

Commands that need no waiting (nearly all of them) are handled right inside
data_received: no task, future or timer per command. Only the session's
asynchronous work (authentication, durable writes) and the TLS upgrade run in a
task, and input arriving meanwhile waits in the session's buffer, so replies
stay in order.

A session offers: greeting(), receive(bytes), process() -> (bytes, Action,
pending coroutine or None), complete(answer) -> (bytes, Action), timeout,
timed_out() -> bytes, tls_started(TLSInfo), disconnected(), buffered (octets
of unprocessed input), backlog (process() stopped early with work left),
in_transaction (work a shutdown lets finish: an SMTP mail transaction).

Flow control reads `buffered` as input received and not parsed yet. A session
must not count what it has already consumed, such as the part of an SMTP
message passed to its spool: that cannot shrink before the end of the message
is read, and while reading is paused it never would be (every message over the
high-water mark would hang until the data timeout).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
import types
from collections.abc import Awaitable, Coroutine, Generator
from dataclasses import dataclass

from ..events.types import Event
from .limits import ConnectionLimiter
from .timeouts import IdleTimeouts

log = logging.getLogger("mailwright.net")

# Stop reading from a client that sends faster than we parse (pipelined commands
# while a delivery is awaited, say); resume once what is unparsed is below LOW.
READ_HIGH_WATER = 1 << 20
READ_LOW_WATER = 1 << 16
# After the last reply of a shutdown, input still arriving is read and dropped for up to
# this long: closing a socket with unread input makes the kernel answer with a reset,
# which can destroy the reply before the client has read it.
LINGER = 2.0


class Action(enum.Enum):
    NONE = 0
    START_TLS = 1
    CLOSE = 2
    COMPRESS = 3        # IMAP COMPRESS=DEFLATE (RFC 4978), handled by the IMAP connection


@dataclass(frozen=True)
class TLSInfo:
    version: str      # e.g. "TLSv1.3"
    cipher: str       # e.g. "TLS_AES_256_GCM_SHA384"
    bits: int


class LineSession:
    """The processing loop shared by the protocol sessions (SMTP, POP3).

    Subclasses provide _next_input() (the next complete command, message or
    chunk, or None), _dispatch(item) (an answer: the reply and the Action, or a
    coroutine giving one) and _emit(out, answer) (append the reply, return the Action)."""
    closed = False
    backlog = False                     # process() stopped early with work left
    in_transaction = False              # a shutdown waits for this to end (bounded)
    output_budget: int | None = None    # stop after this much output (None: never)

    def process(self) -> tuple[bytes, Action, Coroutine | None]:
        """Handle every complete input in order; stop early for STARTTLS, close, or
        work that must be awaited. Returns the reply bytes, what the transport must
        do, and the coroutine to await, if any: its answer goes to complete(),
        then process() again."""
        out = bytearray()
        self.backlog = False
        while not self.closed:
            if self.output_budget is not None and len(out) >= self.output_budget:
                self.backlog = True
                break
            item = self._next_input()
            if item is None:
                break
            answer = self._dispatch(item)
            if isinstance(answer, Coroutine):
                return bytes(out), Action.NONE, answer
            action = self._emit(out, answer)
            if action is not Action.NONE:
                return bytes(out), action, None
        return bytes(out), Action.NONE, None

    def complete(self, answer) -> tuple[bytes, Action]:
        """The answer of a coroutine process() handed out, as reply bytes and action."""
        out = bytearray()
        action = self._emit(out, answer)
        return bytes(out), action

    def _next_input(self):
        raise NotImplementedError

    def _dispatch(self, item):
        raise NotImplementedError

    def _emit(self, out: bytearray, answer) -> Action:
        raise NotImplementedError


def tls_info(ssl_object) -> TLSInfo | None:
    if ssl_object is None:
        return None
    name, _, bits = ssl_object.cipher()
    return TLSInfo(ssl_object.version(), name, bits)


class SessionProtocol(asyncio.Protocol):
    # Subclasses: the protocol's words for refusing, shutting down and failing.
    SHUTTING_DOWN = b""
    INTERNAL_ERROR = b""

    def __init__(self, services, listener, limiter: ConnectionLimiter,
                 tls_context: ssl.SSLContext, timeouts: IdleTimeouts):
        self.services = services
        self.listener = listener
        self.limiter = limiter
        self.tls_context = tls_context
        self.timeouts = timeouts
        self.transport = None
        self.session = None
        self.ip = ""
        self.busy = False          # a task is working for the session
        self.closing = False
        self.stopping = False
        self.eof = False
        self.read_paused = False
        self.write_paused = False

    def make_session(self, ip: str, port: int, tls: TLSInfo | None):
        raise NotImplementedError

    def refusal(self, reason: str) -> bytes:
        raise NotImplementedError

    # --- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip = peer[0]
        refused = self.limiter.acquire(self.ip)
        if refused:
            self.services.events.emit(Event.REFUSED, ip=self.ip, role=self.listener.role,
                                      reason=refused)
            self.ip = ""
            self.closing = True
            transport.write(self.refusal(refused))
            transport.close()
            return
        self.services.connections.add(self)
        self.session = self.make_session(
            peer[0], peer[1], tls_info(transport.get_extra_info("ssl_object")))
        transport.write(self.session.greeting())
        self.timeouts.watch(self, self.session.timeout)

    def data_received(self, data: bytes) -> None:
        if self.session is None or self.closing:
            return
        self.session.receive(data)
        if self.session.buffered > READ_HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._pump()

    def eof_received(self) -> bool:
        self.eof = True
        if self.closing:              # a lingering close: the client is done too
            self.transport.close()
            return False
        if not self.busy:
            self._close()
        # Keep a TCP transport open for replies still to be written; a TLS
        # transport cannot be half-closed (and asyncio warns if asked to).
        return self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.timeouts.unwatch(self)
        if self.ip:
            self.limiter.release(self.ip)
            self.ip = ""
        if self.session is not None and self in self.services.connections:
            self.services.connections.discard(self)
            self.session.disconnected()

    # Backpressure: a client that does not read its replies is not read from.
    def pause_writing(self) -> None:
        self.write_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.read_paused:
            self.transport.resume_reading()
        if self.session is not None and self.session.backlog and not self.busy \
                and not self.closing:
            self._pump()

    # --- driving the session ---------------------------------------------------
    def _pump(self) -> None:
        """Process what the session can now; start a task for what must be awaited."""
        while True:
            try:
                out, action, pending = self.session.process()
            except Exception:  # a bug in a synchronous handler: as _guard does for tasks
                self._fail()
                return
            if out:
                self.transport.write(out)
            if pending is not None:
                # Run it at once: most finish without waiting (SQLite's reads never
                # suspend), and those cost no task and no loop iteration. One that
                # suspends goes on in a task from where it stopped (an eager task:
                # Python 3.12's eager_task_factory does the same).
                try:
                    awaited = pending.send(None)
                except StopIteration as finished:
                    action = self._answered(finished.value)
                    if action is Action.NONE and not self._stop_now():
                        continue               # input that is waiting
                    break
                except Exception:  # a bug in the handler: as _guard does for tasks
                    self._fail()
                    return
                self._spawn(self._await_answer(_resume(pending, awaited)))
                return
            if action is not Action.NONE or not self.session.backlog or self.write_paused:
                break
        self._after(action)

    def _answered(self, answer) -> Action:
        out, action = self.session.complete(answer)
        if out:
            self.transport.write(out)
        return action

    def _after(self, action: Action) -> None:
        """Act on the session's last answer, then wait for more input."""
        if action is Action.CLOSE:
            self._close()
            return
        if action is Action.START_TLS:
            self._spawn(self._start_tls())
            return
        if self._stop_now():
            self._goodbye()
            return
        if self.eof:
            self._close()
            return
        if self.read_paused and self.session.buffered < READ_LOW_WATER:
            self.read_paused = False
            self.transport.resume_reading()
        self.timeouts.watch(self, self.session.timeout)

    def _run_now(self, coro: Coroutine) -> None:
        """Run coro at once and, if it has to wait, on in a guarded task (as _pump
        does with a session's pending coroutine)."""
        try:
            awaited = coro.send(None)
        except StopIteration:
            return
        except Exception:  # a bug: as _guard does for tasks
            self._fail()
            return
        asyncio.get_running_loop().create_task(self._guard(_resume(coro, awaited)))

    def _spawn(self, coro: Coroutine) -> None:
        self.busy = True
        self.timeouts.unwatch(self)         # our own work is not the client's idleness
        asyncio.get_running_loop().create_task(self._guard(coro))

    async def _guard(self, coro: Coroutine) -> None:
        try:
            await coro
        except Exception:  # never a traceback to the peer; log it here
            self._fail()

    def _fail(self) -> None:
        """A bug, not bad input: log it, tell the peer in the protocol's words, close.
        The session's state can't be trusted after an unexpected exception."""
        log.exception("session %s failed", self.session.id)
        if not self.closing:
            self.transport.write(self.INTERNAL_ERROR)
            self._close()

    async def _await_answer(self, pending: Awaitable) -> None:
        answer = await pending
        self.busy = False
        if self.closing:
            return
        action = self._answered(answer)
        if action is Action.NONE and not self._stop_now():
            self._pump()           # input that arrived meanwhile
        else:
            self._after(action)

    async def _start_tls(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self.transport, self, self.tls_context, server_side=True,
                ssl_handshake_timeout=self.services.config.limits.tls_handshake_timeout)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as e:
            log.info("session %s: TLS handshake failed: %s", self.session.id, e)
            self._close()
            return
        self.busy = False
        if transport is None or self.closing:
            self._close()
            return
        self.transport = transport
        self.session.tls_started(tls_info(transport.get_extra_info("ssl_object")))
        self._pump()

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            self.timeouts.unwatch(self)
            self.transport.close()

    # --- called from outside -----------------------------------------------------
    def expire(self) -> None:
        """IdleTimeouts: the client kept us waiting too long."""
        if not self.closing:
            self.transport.write(self.session.timed_out())
            self._close()

    def shutdown(self) -> None:
        """Server stopping: end the session after the command in hand, or after the
        transaction in flight (the app bounds the wait: force_shutdown)."""
        self.stopping = True
        if not self.busy and self._stop_now():
            self._goodbye()

    def force_shutdown(self) -> None:
        """The shutdown grace is over: the protocol's goodbye now, whatever the session
        is doing (a reply it was working on is dropped; nothing was acknowledged)."""
        self.stopping = True
        self._goodbye()

    def _stop_now(self) -> bool:
        return self.stopping and not self.session.in_transaction

    def _goodbye(self) -> None:
        """Say SHUTTING_DOWN (RFC 5321 §3.8: 421, then close) and close gently: no more
        writes (FIN after the reply), late input read and dropped until the client
        closes or LINGER passes."""
        if self.closing:
            return
        if self.SHUTTING_DOWN:
            self.transport.write(self.SHUTTING_DOWN)
        self.closing = True
        self.timeouts.unwatch(self)
        if self.read_paused or self.write_paused:
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER, self.transport.close)


@types.coroutine
def _resume(coro: Coroutine, awaited) -> Generator:
    """Go on with a coroutine already started, which handed `awaited` (what its first
    suspending await waits for) out of its first step: as `yield from coro` would, so
    the task awaiting this waits for the same thing and resumes it the same way."""
    while True:
        try:
            sent = yield awaited
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as e:     # cancellation included: the coroutine decides
            try:
                awaited = coro.throw(e)
            except StopIteration as finished:
                return finished.value
        else:
            try:
                awaited = coro.send(sent)
            except StopIteration as finished:
                return finished.value
