"""The POP3 server session (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).

Like the SMTP session, a state machine fed bytes: `process()` answers every
complete command in order and hands out a coroutine for what must be awaited
(password checks, reading a large message, the UPDATE state's durable write).
The maildrop is the account's INBOX, fixed at login; DELE only marks, and
messages leave the store only in the UPDATE state after QUIT (RFC 1939 §6), so a
dropped connection deletes nothing.
"""

from __future__ import annotations

import base64
import enum
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..auth import driver, sasl
from ..auth.driver import Authenticator
from ..auth.logins import Logins
from ..config import Config
from ..delivery.ids import session_id
from ..events.log import EventLog
from ..events.types import Event
from ..net.connection import Action, LineSession, TLSInfo
from ..net.lines import LineBuffer, LineTooLong
from ..store.base import MailStore, StoreError
from ..store.mailboxes import Maildrop
from .locks import ClusterMaildropLocks, MaildropLocks

# RFC 2449 §4: a command line is at most 255 octets; RFC 5034 §4 lets an AUTH
# line and SASL responses be longer.
COMMAND_LINE = 255
SASL_LINE = 12288
# RFC 1939 §3: the autologout timer is at least 10 minutes.
MIN_TIMEOUT = 600.0
# Stop answering pipelined RETRs once this much output is waiting, so that a
# client that pipelines the whole maildrop never makes us hold it all.
OUTPUT_BUDGET = 256 * 1024

# RFC 5034 §4, RFC 2449 §8.1.2 [AUTH]: exchanges that end before any credentials
# are checked.
_AUTH_ENDED = {
    driver.Ended.LOCKED: "[AUTH] Too many failed logins; try again later",
    driver.Ended.UNSUPPORTED: "Unrecognized authentication mechanism",
    driver.Ended.INVALID_INITIAL: "Invalid base64 in initial response",
    driver.Ended.INVALID_RESPONSE: "Invalid base64 in authentication response",
    driver.Ended.CANCELLED: "Authentication canceled",
}

# What the session gives for one command: the response bytes and what the transport
# does next (net/connection.py).
Answer = tuple[bytes, Action]


class State(enum.Enum):
    AUTHORIZATION = 1
    TRANSACTION = 2


def ok(text: str = "") -> bytes:
    return f"+OK {text}".rstrip().encode() + b"\r\n"


def err(text: str) -> bytes:
    return f"-ERR {text}".encode() + b"\r\n"


def multiline(first: str, lines: list[str]) -> bytes:
    return ok(first) + "".join(f"{line}\r\n" for line in lines).encode() + b".\r\n"


def dot_stuff(data: bytes, first: bytes = b"") -> bytes:
    """RFC 1939 §3: byte-stuff lines starting with "." and end with CRLF "." CRLF;
    after `first` (the +OK line), in one allocation: a large message is copied once."""
    body = data.replace(b"\r\n.", b"\r\n..")    # data itself when no line starts with "."
    lead = b"." if body.startswith(b".") else b""
    end = b".\r\n" if not body or body.endswith(b"\r\n") else b"\r\n.\r\n"
    return b"".join((first, lead, body, end))


def top(data: bytes, lines: int) -> bytes:
    """The header, the blank line and the first `lines` lines of the body."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data
    cut = end + 4
    for _ in range(lines):
        nl = data.find(b"\r\n", cut)
        if nl < 0:
            return data
        cut = nl + 2
    return data[:cut]


@dataclass
class Shared:
    """State shared by every POP3 session of a server."""
    locks: MaildropLocks | ClusterMaildropLocks   # accounts whose maildrop is in use
    last_login: dict[str, float]      # for LOGIN-DELAY (per process)


class Pop3Session(LineSession):
    output_budget = OUTPUT_BUDGET

    def __init__(self, client_ip: str, tls: TLSInfo | None, config: Config, store: MailStore,
                 logins: Logins, events: EventLog, shared: Shared,
                 tls_available: bool = True):
        self.client_ip = client_ip
        self.tls = tls
        self.tls_available = tls_available
        self.config = config
        self.store = store
        self.events = events
        self.shared = shared
        self.id = session_id("P")
        self.lines = LineBuffer(SASL_LINE + 2)
        self.state = State.AUTHORIZATION
        self.user: str | None = None
        self.account: str | None = None
        self.maildrop: Maildrop | None = None
        self.deleted: set[int] = set()        # message numbers
        self.retrieved: set[int] = set()      # UIDs
        self.sasl = Authenticator(sasl.Offer("pop3", config.pop3.allow_plaintext_auth), store,
                                  logins, events, client_ip, self.id)
        self.holds_lock = False
        self.errors = 0
        self.closed = False
        self.timeout = max(MIN_TIMEOUT, config.limits.command_timeout)

    # --- the edges -------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return len(self.lines.buf)

    def greeting(self) -> bytes:
        self.events.emit(Event.POP3_CONNECT, self.id, ip=self.client_ip,
                         tls=self.tls.version if self.tls else "")
        return ok(f"{self.config.hostname} POP3 Mailwright ready")

    def receive(self, data: bytes) -> None:
        self.lines.feed(data)

    def tls_started(self, info: TLSInfo) -> None:
        self.tls = info
        self.user = None
        self.events.emit(Event.STARTTLS, self.id, version=info.version, cipher=info.cipher)

    def timed_out(self) -> bytes:
        self.closed = True
        return err("Autologout; idle for too long")

    def disconnected(self) -> None:
        # Without QUIT nothing is deleted (RFC 1939 §6); only the lock goes.
        self._unlock()
        self.events.emit(Event.POP3_DISCONNECT, self.id, ip=self.client_ip,
                         account=self.account or "")

    def _unlock(self) -> None:
        # Only once: after our QUIT another session may already hold the lock.
        if self.holds_lock:
            self.holds_lock = False
            self.shared.locks.release(self.account)

    def _next_input(self):
        return self.lines.next_line()

    def _emit(self, out: bytearray, answer: Answer) -> Action:
        reply, action = answer
        out += reply
        if reply.startswith(b"-ERR"):
            self.errors += 1
            if self.errors >= self.config.limits.max_errors and action is Action.NONE:
                out += err("Too many errors, closing")
                action = Action.CLOSE
        if action is Action.START_TLS:
            self.lines.discard()            # RFC 2595 §4: nothing pipelined survives STLS
        elif action is Action.CLOSE:
            self.closed = True
        return action

    def _dispatch(self, line: bytes | LineTooLong) -> Answer | Coroutine[Any, Any, Answer]:
        if isinstance(line, LineTooLong):
            self.sasl.abort()
            return err("Line too long"), Action.NONE
        if self.sasl.active:
            return self._sasl_response(line)
        if b"\x00" in line:
            return err("NUL characters are not allowed"), Action.NONE
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return err("Invalid UTF-8 in command"), Action.NONE
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb != "AUTH" and len(line) + 2 > COMMAND_LINE:
            return err("Command line too long"), Action.NONE
        handler = getattr(self, f"cmd_{verb.lower()}", None) if verb.isalpha() else None
        if handler is None:
            return err("Unknown command"), Action.NONE
        return handler(arg)

    def _need(self, state: State) -> bytes | None:
        if self.state is not state:
            return err(f"Command not valid in the {self.state.name} state")
        return None

    # --- any state -----------------------------------------------------------------
    async def cmd_capa(self, arg: str) -> Answer:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                "IMPLEMENTATION Mailwright"]
        if self.state is State.AUTHORIZATION:
            if self._auth_allowed:
                caps += ["USER", "SASL " + " ".join(self.sasl.offer.names)]
            if self.tls is None and self.tls_available:
                caps.append("STLS")
        if self.config.pop3.login_delay:
            caps.append(f"LOGIN-DELAY {self.config.pop3.login_delay}")
        caps.append(f"EXPIRE {await self._expire_capability()}")
        return multiline("Capability list follows", caps), Action.NONE

    async def _expire_capability(self) -> str:
        # RFC 2449 §6.7: before login the policy may vary per user.
        if self.account is None:
            return "NEVER USER"
        days = await self.store.pop3_expire_days(self.account)
        return "NEVER" if days is None else str(days)

    def cmd_quit(self, arg: str) -> Answer | Coroutine[Any, Any, Answer]:
        if self.state is State.AUTHORIZATION:
            return ok(f"{self.config.hostname} signing off"), Action.CLOSE
        return self._update()

    async def _update(self) -> Answer:
        """RFC 1939 §6: the UPDATE state."""
        assert self.maildrop is not None
        deleted = [self.maildrop.messages[n - 1].uid for n in sorted(self.deleted)]
        try:
            removed = await self.store.pop3_update(self.maildrop.mailbox_id, deleted,
                                                   sorted(self.retrieved))
        except Exception as e:
            self.events.emit(Event.STORE_ERROR, self.id, error=repr(e))
            self._unlock()
            return err("[SYS/TEMP] Some deleted messages not removed"), Action.CLOSE
        self._unlock()
        self.events.emit(Event.POP3_UPDATE, self.id, account=self.account, deleted=removed,
                         retrieved=len(self.retrieved))
        left = len(self.maildrop.messages) - len(self.deleted)
        return ok(f"{self.config.hostname} signing off ({left} messages left)"), Action.CLOSE

    # --- AUTHORIZATION ----------------------------------------------------------------
    @property
    def _auth_allowed(self) -> bool:
        return self.sasl.offer.allowed(self.tls is not None)

    def cmd_stls(self, arg: str) -> Answer:
        if e := self._need(State.AUTHORIZATION):
            return e, Action.NONE
        if self.tls is not None:
            return err("Already using TLS"), Action.NONE
        if not self.tls_available:
            return err("STLS not available"), Action.NONE
        return ok("Begin TLS negotiation"), Action.START_TLS

    def cmd_apop(self, arg: str) -> Answer:
        return err("APOP is not supported; use USER/PASS or AUTH over TLS"), Action.NONE

    def cmd_user(self, arg: str) -> Answer:
        if e := self._need(State.AUTHORIZATION):
            return e, Action.NONE
        if not self._auth_allowed:
            return err("[AUTH] Plaintext authentication disallowed; use STLS first"), \
                Action.NONE
        if not arg.strip():
            return err("Syntax: USER name"), Action.NONE
        self.user = arg.strip()
        return ok("Send PASS"), Action.NONE

    def cmd_pass(self, arg: str) -> Answer | Coroutine[Any, Any, Answer]:
        if e := self._need(State.AUTHORIZATION):
            return e, Action.NONE
        if self.user is None:
            return err("USER first"), Action.NONE
        if not self._auth_allowed:
            return err("[AUTH] Plaintext authentication disallowed; use STLS first"), \
                Action.NONE
        user, self.user = self.user, None
        return self._authenticated(self.sasl.password(user, arg, "USER"))

    def cmd_auth(self, arg: str) -> Answer | Coroutine[Any, Any, Answer]:
        if e := self._need(State.AUTHORIZATION):
            return e, Action.NONE
        parts = arg.split()
        if not parts:       # RFC 1734 style listing, which many clients still ask for
            return multiline("Mechanisms follow", list(self.sasl.offer.names)), Action.NONE
        if not self._auth_allowed:
            return err("[AUTH] Authentication disallowed without TLS; use STLS first"), \
                Action.NONE
        if len(parts) > 2:
            return err("Syntax: AUTH mechanism [initial-response]"), Action.NONE
        initial = parts[1] if len(parts) == 2 else None
        return self._authenticated(self.sasl.begin(parts[0], initial))

    def _sasl_response(self, line: bytes) -> Coroutine[Any, Any, Answer]:
        return self._authenticated(self.sasl.respond(line))

    async def _authenticated(self, pending: Awaitable[driver.Result]) -> Answer:
        """The authentication driver's result in POP3's words (RFC 5034 §4)."""
        result = await pending
        if isinstance(result, driver.Continue):
            return b"+ " + base64.b64encode(result.data) + b"\r\n", Action.NONE
        if isinstance(result, driver.Authenticated):
            return await self._finish_success(result.account)
        if isinstance(result, driver.Rejected):
            return err("[AUTH] Authentication failed"), Action.NONE
        return err(_AUTH_ENDED[result]), Action.NONE

    async def _finish_success(self, account: str) -> Answer:
        delay = self.config.pop3.login_delay
        last = self.shared.last_login.get(account)
        now = time.monotonic()
        if delay and last is not None and now - last < delay:
            return err(f"[LOGIN-DELAY] Wait {int(delay - (now - last)) + 1} seconds "
                       "between logins"), Action.NONE
        if not await self.shared.locks.acquire(account):
            return err("[IN-USE] Maildrop already locked by another session"), Action.NONE
        try:
            self.maildrop = await self.store.maildrop(account)
        except StoreError as e:
            self.shared.locks.release(account)
            return err(f"[SYS/TEMP] {e}"), Action.NONE
        self.holds_lock = True
        self.shared.last_login[account] = now
        self.account = account
        self.state = State.TRANSACTION
        self.events.emit(Event.AUTH_OK, self.id, ip=self.client_ip, protocol="pop3",
                         account=account)
        count, size = self._stat()
        return ok(f"{account} has {count} messages ({size} octets)"), Action.NONE

    # --- TRANSACTION ------------------------------------------------------------------
    def _stat(self) -> tuple[int, int]:
        live = [m for n, m in enumerate(self.maildrop.messages, 1) if n not in self.deleted]
        return len(live), sum(m.size for m in live)

    def _message(self, arg: str):
        """(number, message) for a message-number argument, or an error reply."""
        if e := self._need(State.TRANSACTION):
            return None, e
        if not arg.isdigit():
            return None, err("Syntax: message number required")
        n = int(arg)
        if not 1 <= n <= len(self.maildrop.messages) or n in self.deleted:
            return None, err("No such message")
        return n, self.maildrop.messages[n - 1]

    def cmd_stat(self, arg: str) -> Answer:
        if e := self._need(State.TRANSACTION):
            return e, Action.NONE
        count, size = self._stat()
        return ok(f"{count} {size}"), Action.NONE

    def _listing(self, arg: str, value) -> Answer:
        if arg:
            n, msg = self._message(arg)
            if n is None:
                return msg, Action.NONE
            return ok(f"{n} {value(msg)}"), Action.NONE
        if e := self._need(State.TRANSACTION):
            return e, Action.NONE
        lines = [f"{n} {value(m)}" for n, m in enumerate(self.maildrop.messages, 1)
                 if n not in self.deleted]
        return multiline(f"{len(lines)} messages", lines), Action.NONE

    def cmd_list(self, arg: str) -> Answer:
        return self._listing(arg.strip(), lambda m: m.size)

    def cmd_uidl(self, arg: str) -> Answer:
        # Derived from UIDVALIDITY and UID: stable across sessions, never reused
        # (RFC 1939 §7), so a "leave on server" client never fetches a message twice.
        uidvalidity = self.maildrop.uidvalidity if self.maildrop else 0
        return self._listing(arg.strip(), lambda m: f"{uidvalidity}.{m.uid}")

    def cmd_retr(self, arg: str) -> Answer | Coroutine[Any, Any, Answer]:
        n, msg = self._message(arg.strip())
        if n is None:
            return msg, Action.NONE
        self.retrieved.add(msg.uid)
        return self._send(msg, None)

    def cmd_top(self, arg: str) -> Answer | Coroutine[Any, Any, Answer]:
        number, _, lines = arg.strip().partition(" ")
        n, msg = self._message(number)
        if n is None:
            return msg, Action.NONE
        if not lines.strip().isdigit():
            return err("Syntax: TOP message lines"), Action.NONE
        return self._send(msg, int(lines))

    async def _send(self, msg, lines: int | None) -> Answer:
        return self._render(msg, await self.store.read_blob(msg.blob), lines), Action.NONE

    @staticmethod
    def _render(msg, data: bytes, lines: int | None) -> bytes:
        if lines is None:
            return dot_stuff(data, ok(f"{msg.size} octets"))
        return dot_stuff(top(data, lines), ok("Top of message follows"))

    def cmd_dele(self, arg: str) -> Answer:
        n, msg = self._message(arg.strip())
        if n is None:
            return msg, Action.NONE
        self.deleted.add(n)
        return ok(f"Message {n} deleted"), Action.NONE

    def cmd_rset(self, arg: str) -> Answer:
        if e := self._need(State.TRANSACTION):
            return e, Action.NONE
        self.deleted.clear()
        count, size = self._stat()
        return ok(f"Maildrop has {count} messages ({size} octets)"), Action.NONE

    def cmd_noop(self, arg: str) -> Answer:
        if e := self._need(State.TRANSACTION):
            return e, Action.NONE
        return ok(), Action.NONE
