"""The IMAP server session (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1), sans-I/O.

Like the SMTP and POP3 sessions: fed bytes, it answers every complete command
in order and hands out a coroutine for what must be awaited (password checks,
durable writes, reading large messages). Two things are particular to IMAP:

- responses may be large (FETCH of many bodies), so such commands stream their
  untagged data through `send`, an awaitable the connection provides (it waits
  while the client is not reading);
- the server speaks unprompted during IDLE (RFC 2177): `wake()` is called when
  the selected mailbox changes and the connection writes `idle_update()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..auth import sasl
from ..auth.driver import Authenticator
from ..auth.logins import Logins
from ..config import Config
from ..delivery.ids import session_id
from ..events.log import EventLog
from ..events.types import Event
from ..net.connection import Action, LineSession, TLSInfo
from ..store.base import MailStore
from ..store.mailboxes import (
    HIERARCHY,
    MailboxError,
)
from . import mutf7, render
from .auth_commands import AuthCommands
from .base import COMMAND_STATES, Answer, No, State, tagged
from .mailbox_commands import MailboxCommands
from .notify import MailboxWatch
from .parser import (
    CONTINUE,
    CommandFramer,
    LineTooLong,
    ParseError,
    Reader,
    TooBig,
    command_tag,
)
from .selected import Options, View, claim_recent, sync
from .selected_commands import SelectedCommands

LINE_LIMIT = 64 * 1024
# RFC 9051 §5.4: the autologout timer is at least 30 minutes; before login shorter.
AUTOLOGOUT = 1800.0
PREAUTH_TIMEOUT = 60.0



class ImapSession(AuthCommands, MailboxCommands, SelectedCommands, LineSession):
    def __init__(self, client_ip: str, tls: TLSInfo | None, config: Config, store: MailStore,
                 logins: Logins, events: EventLog, watch: MailboxWatch,
                 tls_available: bool = True):
        self.client_ip = client_ip
        self.tls = tls
        self.tls_available = tls_available
        self.config = config
        self.store = store
        self.events = events
        self.watch = watch
        self.id = session_id("I")
        max_size = config.limits.max_message_size
        self.framer = CommandFramer(LINE_LIMIT, max_size, max_size + LINE_LIMIT)
        self.state = State.NOT_AUTHENTICATED
        self.account: str | None = None
        self.account_id = 0
        self.options = Options()
        self.view: View | None = None
        self.saved: list[int] = []             # RFC 5182 SEARCHRES "$"
        self.sasl = Authenticator(sasl.Offer("imap", config.imap.allow_plaintext_auth), store,
                                  logins, events, client_ip, self.id)
        self.sasl_tag = ""                     # the AUTHENTICATE command's, while it runs
        self.idle_tag: str | None = None
        self.closed = False
        self.errors = 0                        # BAD responses written
        self._answered_bad = False             # the response being written is a BAD
        # set by the connection: writes buffers in order, waits while the client is not reading
        self.send: Callable[[list], Awaitable[None]] | None = None
        self.wake: Callable[[], None] | None = None                   # set by the connection
        self.compress_requested = False
        self._idle_claim: asyncio.Task | None = None

    # --- the edges ---------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self.framer.buffered

    @property
    def timeout(self) -> float:
        return AUTOLOGOUT if self.state is not State.NOT_AUTHENTICATED else PREAUTH_TIMEOUT

    def greeting(self) -> bytes:
        self.events.emit(Event.IMAP_CONNECT, self.id, ip=self.client_ip,
                         tls=self.tls.version if self.tls else "")
        return b"* OK [CAPABILITY " + self._capabilities().encode() + b"] " \
            + f"{self.config.hostname} IMAP Mailwright ready\r\n".encode()

    def receive(self, data: bytes) -> None:
        self.framer.feed(data)

    def tls_started(self, info: TLSInfo) -> None:
        self.tls = info
        self.events.emit(Event.STARTTLS, self.id, version=info.version, cipher=info.cipher)

    def timed_out(self) -> bytes:
        self.closed = True
        return b"* BYE Autologout; idle for too long\r\n"

    def disconnected(self) -> None:
        self._stop_idle()
        self.events.emit(Event.IMAP_DISCONNECT, self.id, ip=self.client_ip,
                         account=self.account or "")

    def _next_input(self):
        return self.framer.next()

    def _emit(self, out: bytearray, answer: Answer) -> Action:
        reply, action = answer
        out += reply
        if self._answered_bad:
            self._answered_bad = False
            self.errors += 1
            if self.errors >= self.config.limits.max_errors and action is Action.NONE:
                out += b"* BYE Too many errors, closing\r\n"
                action = Action.CLOSE
        if action is Action.START_TLS:
            self.framer.discard()          # RFC 9051 §6.2.1: nothing pipelined survives
        elif action is Action.CLOSE:
            self.closed = True
        return action

    # --- dispatch --------------------------------------------------------------------
    def _dispatch(self, item) -> Answer | Coroutine[Any, Any, Answer]:
        if item is CONTINUE:
            return b"+ Ready for literal data\r\n", Action.NONE
        if isinstance(item, TooBig):
            tag = command_tag(item.command)
            if item.close:
                return (self._bad(tag, "Literal too large; closing", "TOOBIG")
                        + b"* BYE Literal too large\r\n"), Action.CLOSE
            return tagged(tag, "NO", "Literal too large", "TOOBIG"), Action.NONE
        if isinstance(item, LineTooLong):
            self.sasl.abort()
            return self._bad(command_tag(item.command), "Command line too long",
                             "TOOBIG"), Action.NONE
        if self.idle_tag is not None:
            return self._idle_input(item)
        if self.sasl.active:
            return self._sasl_response(item)
        r = Reader(item)
        try:
            tag = r.tag()
        except ParseError:
            return self._bad("*", "Missing or invalid tag"), Action.NONE
        try:
            r.sp()
            name = r.atom().upper()
            uid = False
            if name == "UID":
                r.sp()
                name = r.atom().upper()
                uid = True
                if name not in ("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE",
                                "SORT", "THREAD"):
                    raise ParseError(f"UID {name} is not a command")
        except ParseError as e:
            return self._bad(tag, str(e) or "Syntax error"), Action.NONE
        handler = getattr(self, f"cmd_{name.lower()}", None) if name.isalpha() else None
        if handler is None:
            return self._bad(tag, f"Unknown command {name[:40]}"), Action.NONE
        needed = self._STATES.get(name)
        if needed and self.state not in needed:
            return self._bad(tag, f"{name} is not valid in the "
                             f"{self.state.name.replace('_', ' ').lower()} state"), Action.NONE
        if name not in self._LEAVES_MAILBOX and self.view is not None \
                and not self.view.readonly:
            return self._claim_then(tag, name, handler, r, uid)
        return self._invoke(tag, name, handler, r, uid)

    def _invoke(self, tag: str, name: str, handler, r: Reader, uid: bool
                ) -> Answer | Coroutine[Any, Any, Answer]:
        try:
            answer = handler(tag, r, uid) if name in self._UID_AWARE else handler(tag, r)
        except ParseError as e:
            return self._bad(tag, f"{name}: {e}"), Action.NONE
        except (No, MailboxError) as e:
            return self._refused(tag, e)
        if isinstance(answer, Coroutine):
            return self._guarded(tag, name, answer)
        return answer

    async def _refused(self, tag: str, e: No | MailboxError) -> Answer:
        return await self._done(tag, "NO", str(e), e.code), Action.NONE

    async def _claim_due(self) -> bool:
        """Have messages arrived whose \\Recent this read-write session must claim
        before the command's response can announce them (RFC 3501 §2.3.2)?"""
        view = self.view
        if view is None or view.readonly:
            return False
        versions = await self.store.mailbox_versions([view.id])
        return view.id in versions and view.claim_due(versions[view.id][0])

    async def _claim_then(self, tag: str, name: str, handler, r: Reader, uid: bool
                          ) -> Answer:
        assert self.view is not None
        if await self._claim_due():
            await claim_recent(self.store, self.view)
        answer = self._invoke(tag, name, handler, r, uid)
        if isinstance(answer, Coroutine):
            return await answer
        return answer

    async def _guarded(self, tag: str, name: str, coro: Coroutine) -> Answer:
        # Most handlers are coroutines (their tagged reply reads the store), so their
        # syntax errors arrive here: worded as _invoke words a synchronous handler's.
        try:
            return await coro
        except (No, MailboxError) as e:
            return await self._done(tag, "NO", str(e), e.code), Action.NONE
        except ParseError as e:
            return self._bad(tag, f"{name}: {e}"), Action.NONE

    _STATES = COMMAND_STATES
    # Commands after which the selected mailbox's news are never told: claiming
    # \Recent for them would hide those messages' \Recent from every session.
    _LEAVES_MAILBOX = {"SELECT", "EXAMINE", "CLOSE", "UNSELECT", "LOGOUT"}
    _UID_AWARE = {"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD"}

    # --- helpers ------------------------------------------------------------------------
    async def _done(self, tag: str, status: str, text: str, code: str = "",
              expunge_ok: bool = False, quiet: set[int] | None = None) -> bytes:
        """Pending updates for the selected mailbox, then the tagged response."""
        updates = b""
        if self.view is not None:
            updates = await sync(self.store, self.view, self.options, expunge_ok, quiet)
            updates += self._highestmodseq_news()
        return updates + tagged(tag, status, text, code)

    def _highestmodseq_news(self) -> bytes:
        """RFC 7162 §3.1: the first CONDSTORE enabling command while a mailbox is
        selected (other than SELECT/EXAMINE with CONDSTORE, which says so itself) is
        answered with the mailbox's HIGHESTMODSEQ."""
        view = self.view
        if view is None or not self.options.condstore or view.highestmodseq_told:
            return b""
        view.highestmodseq_told = True
        return b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % view.modseq

    def _bad(self, tag: str, text: str, code: str = "") -> bytes:
        """The BAD for a command that was not understood (RFC 9051 §7.1.3), tagged, or
        untagged ("*") when its tag cannot be told; the session notes it, and _emit
        counts it toward the too-many-errors close."""
        self._answered_bad = True
        return tagged(tag, "BAD", text, code)

    async def _ok(self, tag: str, text: str, code: str = "", **kw) -> Answer:
        return await self._done(tag, "OK", text, code, **kw), Action.NONE

    @property
    def _utf8(self) -> bool:
        return self.options.rev2 or self.options.utf8

    def _mailbox_arg(self, r: Reader) -> str:
        raw = r.astring()
        return self._decode_name(raw)

    def _decode_name(self, raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("mailbox name is not UTF-8") from None
        if not self._utf8 and text.isascii() and "&" in text:
            try:
                text = mutf7.decode(text)
            except mutf7.NameError_ as e:
                # A valid astring (so not BAD) that names no mailbox and cannot
                # name one: every name is shown to this client as valid modified
                # UTF-7 (RFC 3501 §5.1.3), so it could never be listed back.
                raise No(f"Mailbox name is not valid modified UTF-7: {e}", "CANNOT") \
                    from None
        head, sep, rest = text.partition(HIERARCHY)
        return ("INBOX" + sep + rest) if head.upper() == "INBOX" else text

    def _name(self, name: str) -> bytes:
        return render.mailbox_name(name, self._utf8)

    def _capabilities(self) -> str:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.tls is None and self.tls_available:
                caps.append("STARTTLS")
            if self._auth_allowed:
                caps += [f"AUTH={m}" for m in self.sasl.offer.mechanisms(self.tls is not None)]
            else:
                caps.append("LOGINDISABLED")
            return " ".join(caps)
        caps += ["NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "LIST-EXTENDED",
                 "LIST-STATUS", "SPECIAL-USE", "ESEARCH", "SEARCHRES", "SORT", "SORT=DISPLAY",
                 "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "CONDSTORE", "QRESYNC",
                 "QUOTA", "QUOTA=RES-STORAGE", "BINARY", "MULTIAPPEND", "CREATE-SPECIAL-USE",
                 "STATUS=SIZE", "UTF8=ACCEPT", "WITHIN", "COMPRESS=DEFLATE",
                 f"APPENDLIMIT={self.config.limits.max_message_size}"]
        return " ".join(caps)

    # --- any state -----------------------------------------------------------------------
    async def cmd_capability(self, tag: str, r: Reader) -> Answer:
        r.end()
        return b"* CAPABILITY " + self._capabilities().encode() + b"\r\n" + \
            await self._done(tag, "OK", "CAPABILITY completed"), Action.NONE

    async def cmd_noop(self, tag: str, r: Reader) -> Answer:
        r.end()
        return await self._ok(tag, "NOOP completed", expunge_ok=True)

    async def cmd_check(self, tag: str, r: Reader) -> Answer:
        r.end()
        return await self._ok(tag, "CHECK completed", expunge_ok=True)

    def cmd_logout(self, tag: str, r: Reader) -> Answer:
        r.end()
        self.state = State.LOGOUT
        return b"* BYE Logging out\r\n" + tagged(tag, "OK", "LOGOUT completed"), Action.CLOSE

    async def cmd_id(self, tag: str, r: Reader) -> Answer:
        # RFC 2971: the client's identification is logged; ours is answered.
        r.sp()
        if not r.accept(b"NIL"):
            items = r.list_of(r.nstring)
            if len(items) % 2 or len(items) > 60:
                raise ParseError("ID takes field/value pairs")
            fields = {(k or b"").decode("utf-8", "replace")[:30]:
                      (v or b"").decode("utf-8", "replace")[:100]
                      for k, v in zip(items[::2], items[1::2], strict=True)}
            self.events.emit(Event.IMAP_ID, self.id, **{"client": fields})
        r.end()
        return b'* ID ("name" "Mailwright" "vendor" "Mailwright")\r\n' + \
            await self._done(tag, "OK", "ID completed"), Action.NONE

    # --- authenticated ----------------------------------------------------------------------------
    async def cmd_enable(self, tag: str, r: Reader) -> Answer:
        enabled = []
        while r.accept(b" "):
            cap = r.atom().upper()
            if cap == "IMAP4REV2" and not self.options.rev2:
                self.options.rev2 = True
                enabled.append("IMAP4rev2")
            elif cap == "UTF8=ACCEPT" and not self.options.utf8:
                self.options.utf8 = True
                enabled.append("UTF8=ACCEPT")
            elif cap in ("CONDSTORE", "QRESYNC"):
                if not self.options.condstore:
                    self.options.condstore = True
                    enabled.append("CONDSTORE")
                if cap == "QRESYNC" and not self.options.qresync:
                    self.options.qresync = True
                    enabled.append("QRESYNC")
        if not enabled and not r.at_end():
            raise ParseError("expected capability names")
        r.end()
        return ("* ENABLED " + " ".join(enabled)).rstrip().encode() + b"\r\n" + \
            await self._done(tag, "OK", "ENABLE completed"), Action.NONE

    async def cmd_namespace(self, tag: str, r: Reader) -> Answer:
        r.end()
        return b'* NAMESPACE (("" "/")) NIL NIL\r\n' + \
            await self._done(tag, "OK", "NAMESPACE completed"), Action.NONE

    async def cmd_idle(self, tag: str, r: Reader) -> Answer:
        r.end()
        self.idle_tag = tag
        out = b"+ idling\r\n"
        if self.view is not None:
            out += await sync(self.store, self.view, self.options, expunge_ok=True)
            if self.wake is not None:
                await self.watch.watch(self.view.id, self.wake)
        return out, Action.NONE

    async def idle_update(self) -> bytes:
        """Called by the connection when the watched mailbox changed during IDLE.
        New messages are told once their \\Recent is claimed: that is a store
        write, so it runs as a task that wakes the connection again when done."""
        if self.idle_tag is None or self.view is None:
            return b""
        view = self.view
        if await self._claim_due() and self.wake is not None:
            if self._idle_claim is None or self._idle_claim.done():
                self._idle_claim = asyncio.get_running_loop().create_task(
                    self._claim_and_wake(view))
        return await sync(self.store, view, self.options, expunge_ok=True)

    async def _claim_and_wake(self, view: View) -> None:
        await claim_recent(self.store, view)
        if self.view is view and self.idle_tag is not None and self.wake is not None:
            self.wake()

    def _idle_input(self, line: bytes) -> Answer | Coroutine[Any, Any, Answer]:
        tag, self.idle_tag = self.idle_tag or "*", None
        self._stop_idle()
        if line.rstrip(b"\r\n").upper() != b"DONE":
            return self._bad(tag, "Expected DONE"), Action.NONE
        return self._ok(tag, "IDLE terminated", expunge_ok=True)

    def _stop_idle(self) -> None:
        if self.view is not None and self.wake is not None:
            self.watch.unwatch(self.view.id, self.wake)

    async def cmd_getquotaroot(self, tag: str, r: Reader) -> Answer:
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        if await self.store.mailbox(self.account_id, name) is None:
            raise No("No such mailbox", "NONEXISTENT")
        quota = await self.store.quota(self.account_id)
        out = b"* QUOTAROOT " + self._name(name) + (b' ""' if quota.limit else b"") + b"\r\n"
        if quota.limit:
            out += self._quota_line(quota)
        return out + await self._done(tag, "OK", "GETQUOTAROOT completed"), Action.NONE

    async def cmd_getquota(self, tag: str, r: Reader) -> Answer:
        r.sp()
        root = r.astr()
        r.end()
        quota = await self.store.quota(self.account_id)
        if root != "" or not quota.limit:
            raise No("No such quota root", "NONEXISTENT")
        return self._quota_line(quota) + await self._done(tag, "OK", "GETQUOTA completed"), \
            Action.NONE

    @staticmethod
    def _quota_line(quota) -> bytes:
        # RFC 9208 §5.1: STORAGE in units of 1024 octets.
        return (f'* QUOTA "" (STORAGE {(quota.used + 1023) // 1024} {quota.limit // 1024})'
                "\r\n").encode()

    def cmd_setquota(self, tag: str, r: Reader) -> Answer:
        raise No("Quotas are set by the administrator (mailwright user quota)", "NOPERM")

    def cmd_compress(self, tag: str, r: Reader) -> Answer:
        r.sp()
        if r.atom().upper() != "DEFLATE":
            raise ParseError("only DEFLATE is supported")
        r.end()
        if self.compress_requested:
            raise No("Compression is already active", "COMPRESSIONACTIVE")
        self.compress_requested = True
        return tagged(tag, "OK", "DEFLATE active"), Action.COMPRESS
