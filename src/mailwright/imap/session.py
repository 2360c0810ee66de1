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
import base64
import enum
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..auth import sasl
from ..auth.lockout import AuthLockout
from ..config import Config
from ..events.log import EventLog
from ..net.connection import Action, LineSession, TLSInfo
from ..store.base import READ_IN_THREAD, MailStore
from ..store.mailboxes import (
    HIERARCHY,
    SYSTEM_FLAGS,
    MailboxError,
    normalize_flag,
)
from . import fetch, mutf7, render, search, threads
from .notify import MailboxWatch
from .parser import (
    CONTINUE,
    CommandFramer,
    LineTooLong,
    ParseError,
    Reader,
    SequenceSet,
    TooBig,
    command_tag,
)
from .selected import Options, View, open_view, sync

LINE_LIMIT = 64 * 1024
# RFC 9051 §5.4: the autologout timer is at least 30 minutes; before login shorter.
AUTOLOGOUT = 1800.0
PREAUTH_TIMEOUT = 60.0
MECHANISMS = ("PLAIN", "SCRAM-SHA-256")
STREAM_CHUNK = 256 * 1024
# A metadata-only FETCH of up to this many messages is answered at once; larger ones
# (and any that read message bodies) stream, so no response sits in memory whole.
SYNC_FETCH_MAX = 2000
PERMANENT_FLAGS = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"
STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
                "HIGHESTMODSEQ", "APPENDLIMIT")

Outcome = tuple[bytes, Action]
_serial = itertools.count()
_TAG = secrets.token_hex(2).upper()


class State(enum.Enum):
    NOT_AUTHENTICATED = 1
    AUTHENTICATED = 2
    SELECTED = 3
    LOGOUT = 4


class No(Exception):
    """A command that cannot be carried out: tagged NO [code] text."""

    def __init__(self, text: str, code: str = ""):
        super().__init__(text)
        self.code = code


_AUTH = (State.AUTHENTICATED, State.SELECTED)
_SEL = (State.SELECTED,)
# The states each command is valid in (RFC 9051 §6); absent: any state.
COMMAND_STATES = {
    "STARTTLS": (State.NOT_AUTHENTICATED,), "LOGIN": (State.NOT_AUTHENTICATED,),
    "AUTHENTICATE": (State.NOT_AUTHENTICATED,),
    **{c: _AUTH for c in ("ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME",
                          "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE",
                          "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT",
                          "SETQUOTA", "COMPRESS")},
    **{c: _SEL for c in ("CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE",
                         "COPY", "MOVE", "CHECK", "SORT", "THREAD")},
}


def _line(tag: str, status: str, text: str, code: str = "") -> bytes:
    code = f"[{code}] " if code else ""
    return f"{tag} {status} {code}{text}\r\n".encode()


class ImapSession(LineSession):
    def __init__(self, client_ip: str, tls: TLSInfo | None, config: Config, store: MailStore,
                 lockout: AuthLockout, events: EventLog, watch: MailboxWatch,
                 tls_available: bool = True):
        self.client_ip = client_ip
        self.tls = tls
        self.tls_available = tls_available
        self.config = config
        self.store = store
        self.lockout = lockout
        self.events = events
        self.watch = watch
        self.id = f"{_TAG}I{next(_serial):X}"
        max_size = config.limits.max_message_size
        self.framer = CommandFramer(LINE_LIMIT, max_size, max_size + LINE_LIMIT)
        self.state = State.NOT_AUTHENTICATED
        self.account: str | None = None
        self.account_id = 0
        self.options = Options()
        self.view: View | None = None
        self.saved: list[int] = []             # RFC 5182 SEARCHRES "$"
        self.sasl: sasl.Mechanism | None = None
        self.sasl_tag = ""
        self.sasl_final_pending: str | None = None
        self.idle_tag: str | None = None
        self.closed = False
        self.errors = 0
        self.send: Callable[[bytes], Awaitable[None]] | None = None   # set by the connection
        self.wake: Callable[[], None] | None = None                   # set by the connection
        self.compress_requested = False

    # --- the edges ---------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self.framer.buffered

    @property
    def timeout(self) -> float:
        return AUTOLOGOUT if self.state is not State.NOT_AUTHENTICATED else PREAUTH_TIMEOUT

    def greeting(self) -> bytes:
        self.events.emit("imap-connect", self.id, ip=self.client_ip,
                         tls=self.tls.version if self.tls else "")
        return b"* OK [CAPABILITY " + self._capabilities().encode() + b"] " \
            + f"{self.config.hostname} IMAP Mailwright ready\r\n".encode()

    def receive(self, data: bytes) -> None:
        self.framer.feed(data)

    def tls_started(self, info: TLSInfo) -> None:
        self.tls = info
        self.events.emit("starttls", self.id, version=info.version, cipher=info.cipher)

    def timed_out(self) -> bytes:
        self.closed = True
        return b"* BYE Autologout; idle for too long\r\n"

    def disconnected(self) -> None:
        self._stop_idle()
        self.events.emit("imap-disconnect", self.id, ip=self.client_ip,
                         account=self.account or "")

    def _next_input(self):
        return self.framer.next()

    def _emit(self, out: bytearray, outcome: Outcome) -> Action:
        reply, action = outcome
        out += reply
        last = reply[reply.rfind(b"\r\n", 0, len(reply) - 2) + 2:] if reply else b""
        if b" BAD " in last[:64] and not last.startswith(b"*"):
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
    def _dispatch(self, item) -> Outcome | Coroutine[Any, Any, Outcome]:
        if item is CONTINUE:
            return b"+ Ready for literal data\r\n", Action.NONE
        if isinstance(item, TooBig):
            tag = command_tag(item.command)
            if item.close:
                return (_line(tag, "BAD", "Literal too large; closing", "TOOBIG")
                        + b"* BYE Literal too large\r\n"), Action.CLOSE
            return _line(tag, "NO", "Literal too large", "TOOBIG"), Action.NONE
        if isinstance(item, LineTooLong):
            self.sasl = None
            return _line(command_tag(item.command), "BAD", "Command line too long",
                         "TOOBIG"), Action.NONE
        if self.idle_tag is not None:
            return self._idle_input(item)
        if self.sasl is not None:
            return self._sasl_response(item)
        r = Reader(item)
        try:
            tag = r.tag()
        except ParseError:
            return b"* BAD Missing or invalid tag\r\n", Action.NONE
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
            return _line(tag, "BAD", str(e) or "Syntax error"), Action.NONE
        handler = getattr(self, f"cmd_{name.lower()}", None) if name.isalpha() else None
        if handler is None:
            return _line(tag, "BAD", f"Unknown command {name[:40]}"), Action.NONE
        needed = self._STATES.get(name)
        if needed and self.state not in needed:
            return _line(tag, "BAD", f"{name} is not valid in the "
                         f"{self.state.name.replace('_', ' ').lower()} state"), Action.NONE
        try:
            outcome = handler(tag, r, uid) if name in self._UID_AWARE else handler(tag, r)
        except ParseError as e:
            return _line(tag, "BAD", f"{name}: {e}"), Action.NONE
        except No as e:
            return self._done(tag, "NO", str(e), e.code), Action.NONE
        except MailboxError as e:
            return self._done(tag, "NO", str(e), e.code), Action.NONE
        if isinstance(outcome, Coroutine):
            return self._guarded(tag, outcome)
        return outcome

    async def _guarded(self, tag: str, coro: Coroutine) -> Outcome:
        try:
            return await coro
        except (No, MailboxError) as e:
            return self._done(tag, "NO", str(e), e.code), Action.NONE
        except ParseError as e:
            return _line(tag, "BAD", str(e)), Action.NONE

    _STATES = COMMAND_STATES
    _UID_AWARE = {"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD"}

    # --- helpers ------------------------------------------------------------------------
    def _done(self, tag: str, status: str, text: str, code: str = "",
              expunge_ok: bool = False, quiet: set[int] | None = None) -> bytes:
        """Pending updates for the selected mailbox, then the tagged response."""
        updates = b""
        if self.view is not None:
            updates = sync(self.store, self.view, self.options, expunge_ok, quiet)
        return updates + _line(tag, status, text, code)

    def _ok(self, tag: str, text: str, code: str = "", **kw) -> Outcome:
        return self._done(tag, "OK", text, code, **kw), Action.NONE

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
                raise ParseError(f"bad mailbox name: {e}") from None
        head, sep, rest = text.partition(HIERARCHY)
        return ("INBOX" + sep + rest) if head.upper() == "INBOX" else text

    def _name(self, name: str) -> bytes:
        return render.string(name if self._utf8 else mutf7.encode(name))

    def _capabilities(self) -> str:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.tls is None and self.tls_available:
                caps.append("STARTTLS")
            if self._auth_allowed:
                caps += [f"AUTH={m}" for m in MECHANISMS]
            else:
                caps.append("LOGINDISABLED")
            return " ".join(caps)
        caps += ["NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "LIST-EXTENDED",
                 "LIST-STATUS", "SPECIAL-USE", "ESEARCH", "SEARCHRES", "SORT",
                 "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "CONDSTORE", "QRESYNC",
                 "QUOTA", "QUOTA=RES-STORAGE", "BINARY", "MULTIAPPEND",
                 "STATUS=SIZE", "UTF8=ACCEPT", "WITHIN", "COMPRESS=DEFLATE",
                 f"APPENDLIMIT={self.config.limits.max_message_size}"]
        return " ".join(caps)

    # --- any state -----------------------------------------------------------------------
    def cmd_capability(self, tag: str, r: Reader) -> Outcome:
        r.end()
        return b"* CAPABILITY " + self._capabilities().encode() + b"\r\n" + \
            self._done(tag, "OK", "CAPABILITY completed"), Action.NONE

    def cmd_noop(self, tag: str, r: Reader) -> Outcome:
        r.end()
        return self._ok(tag, "NOOP completed", expunge_ok=True)

    def cmd_check(self, tag: str, r: Reader) -> Outcome:
        r.end()
        return self._ok(tag, "CHECK completed", expunge_ok=True)

    def cmd_logout(self, tag: str, r: Reader) -> Outcome:
        r.end()
        self.state = State.LOGOUT
        return b"* BYE Logging out\r\n" + _line(tag, "OK", "LOGOUT completed"), Action.CLOSE

    def cmd_id(self, tag: str, r: Reader) -> Outcome:
        # RFC 2971: the client's identification is logged; ours is answered.
        r.sp()
        if not r.accept(b"NIL"):
            items = r.list_of(r.nstring)
            if len(items) % 2 or len(items) > 60:
                raise ParseError("ID takes field/value pairs")
            fields = {(k or b"").decode("utf-8", "replace")[:30]:
                      (v or b"").decode("utf-8", "replace")[:100]
                      for k, v in zip(items[::2], items[1::2], strict=True)}
            self.events.emit("imap-id", self.id, **{"client": fields})
        r.end()
        return b'* ID ("name" "Mailwright" "vendor" "Mailwright")\r\n' + \
            self._done(tag, "OK", "ID completed"), Action.NONE

    # --- not authenticated -------------------------------------------------------------------
    @property
    def _auth_allowed(self) -> bool:
        return self.tls is not None or self.config.imap.allow_plaintext_auth

    def cmd_starttls(self, tag: str, r: Reader) -> Outcome:
        r.end()
        if self.tls is not None or not self.tls_available:
            return _line(tag, "BAD", "TLS is already active or not available"), Action.NONE
        return _line(tag, "OK", "Begin TLS negotiation now"), Action.START_TLS

    def _locked(self, tag: str) -> Outcome | None:
        if self.lockout.locked_for(self.client_ip) > 0:
            return _line(tag, "NO", "Too many failed logins; try again later",
                         "UNAVAILABLE"), Action.NONE
        return None

    def cmd_login(self, tag: str, r: Reader) -> Outcome | Coroutine[Any, Any, Outcome]:
        r.sp()
        user = r.astr()
        r.sp()
        password = r.astr()
        r.end()
        if not self._auth_allowed:
            return _line(tag, "NO", "Plaintext login disallowed; use STARTTLS first",
                         "PRIVACYREQUIRED"), Action.NONE
        if locked := self._locked(tag):
            return locked
        return self._login(tag, user, password)

    async def _login(self, tag: str, user: str, password: str) -> Outcome:
        step = await sasl.check_password(self.store, user, password)
        return await self._finish_auth(tag, step, "LOGIN"), Action.NONE

    def cmd_authenticate(self, tag: str, r: Reader) -> Outcome | Coroutine[Any, Any, Outcome]:
        r.sp()
        mechanism = r.atom().upper()
        initial = None
        if r.accept(b" "):
            text = r.rest().decode("ascii", "replace")
            initial = b"" if text == "=" else sasl.decode_response(text)
            if initial is None:
                raise ParseError("invalid base64 in initial response")
        r.end()
        if not self._auth_allowed:
            return _line(tag, "NO", "Authentication disallowed without TLS; use STARTTLS",
                         "PRIVACYREQUIRED"), Action.NONE
        if locked := self._locked(tag):
            return locked
        mech = sasl.make_mechanism(mechanism, self.store) if mechanism in MECHANISMS else None
        if mech is None:
            return _line(tag, "NO", "Unsupported authentication mechanism",
                         "CANNOT"), Action.NONE
        self.sasl, self.sasl_tag = mech, tag
        return self._sasl_start(mech, initial)

    async def _sasl_start(self, mech: sasl.Mechanism, initial: bytes | None) -> Outcome:
        return await self._sasl_step(await mech.start(initial)), Action.NONE

    def _sasl_response(self, line: bytes) -> Outcome | Coroutine[Any, Any, Outcome]:
        tag = self.sasl_tag
        text = line.rstrip(b"\r\n")
        if text == b"*":                                  # RFC 9051 §6.2.2: cancelled
            self.sasl = None
            self.sasl_final_pending = None
            return _line(tag, "BAD", "Authentication cancelled"), Action.NONE
        if self.sasl_final_pending is not None:
            account, self.sasl_final_pending = self.sasl_final_pending, None
            self.sasl = None
            return self._finish_success(tag, account), Action.NONE
        data = sasl.decode_response(text.decode("ascii", "replace"))
        if data is None:
            self.sasl = None
            return _line(tag, "BAD", "Invalid base64 in authentication response"), Action.NONE
        return self._sasl_continue(data)

    async def _sasl_continue(self, data: bytes) -> Outcome:
        assert self.sasl is not None
        return await self._sasl_step(await self.sasl.respond(data)), Action.NONE

    async def _sasl_step(self, step: sasl.Step) -> bytes:
        if isinstance(step, sasl.Challenge):
            return b"+ " + base64.b64encode(step.data) + b"\r\n"
        if isinstance(step, sasl.Success) and step.final is not None:
            self.sasl_final_pending = step.account
            return b"+ " + base64.b64encode(step.final) + b"\r\n"
        mech = self.sasl.name if self.sasl else ""
        self.sasl = None
        return await self._finish_auth(self.sasl_tag, step, mech)

    async def _finish_auth(self, tag: str, step: sasl.Step, mechanism: str) -> bytes:
        if isinstance(step, sasl.Success):
            return self._finish_success(tag, step.account)
        delay = self.lockout.record_failure(self.client_ip)
        self.events.emit("auth-fail", self.id, ip=self.client_ip, protocol="imap",
                         mechanism=mechanism, username=getattr(step, "username", ""))
        await asyncio.sleep(delay)
        return _line(tag, "NO", "Authentication failed", "AUTHENTICATIONFAILED")

    def _finish_success(self, tag: str, account: str) -> bytes:
        self.sasl = None
        account_id = self.store.account_id(account)
        if account_id is None:
            return _line(tag, "NO", "Account not available", "UNAVAILABLE")
        self.lockout.record_success(self.client_ip)
        self.account, self.account_id = account, account_id
        self.state = State.AUTHENTICATED
        self.events.emit("auth-ok", self.id, ip=self.client_ip, protocol="imap",
                         account=account)
        return _line(tag, "OK", f"Logged in as {account}",
                     "CAPABILITY " + self._capabilities())

    # --- authenticated ----------------------------------------------------------------------------
    def cmd_enable(self, tag: str, r: Reader) -> Outcome:
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
            self._done(tag, "OK", "ENABLE completed"), Action.NONE

    def cmd_namespace(self, tag: str, r: Reader) -> Outcome:
        r.end()
        return b'* NAMESPACE (("" "/")) NIL NIL\r\n' + \
            self._done(tag, "OK", "NAMESPACE completed"), Action.NONE

    def cmd_select(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        return self._select(tag, r, readonly=False)

    def cmd_examine(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        return self._select(tag, r, readonly=True)

    async def _select(self, tag: str, r: Reader, readonly: bool) -> Outcome:
        r.sp()
        name = self._mailbox_arg(r)
        qresync = None
        condstore = False
        if r.accept(b" ("):
            while True:
                word = r.atom().upper()
                if word == "CONDSTORE":
                    condstore = True
                elif word == "QRESYNC":
                    if not self.options.qresync:
                        raise ParseError("QRESYNC must be enabled first (RFC 7162 §3.2.3)")
                    r.sp()
                    qresync = self._qresync_params(r)
                else:
                    raise ParseError(f"unknown SELECT parameter {word}")
                if r.close():
                    break
                r.sp()
        r.end()
        out = bytearray()
        if self.view is not None:
            self._close_view()
            out += b"* OK [CLOSED] Previous mailbox closed\r\n"
            self.state = State.AUTHENTICATED
        mailbox = self.store.mailbox(self.account_id, name)
        if mailbox is None:
            return bytes(out) + _line(tag, "NO", "No such mailbox", "NONEXISTENT"), Action.NONE
        if condstore:
            self.options.condstore = True
        recent_from = 0
        if not readonly:
            recent_from = await self.store.claim_recent(mailbox.id)
        view = open_view(self.store, mailbox, readonly, recent_from)
        self.view = view
        self.state = State.SELECTED
        keywords = sorted({f for flags in view.flags.values() for f in flags.split()
                           if not f.startswith("\\")})
        flags = " ".join(list(SYSTEM_FLAGS) + keywords)
        out += f"* FLAGS ({flags})\r\n".encode()
        out += b"* OK [PERMANENTFLAGS " + (b"()" if readonly else
                                          PERMANENT_FLAGS) + b"] Flags permitted\r\n"
        out += b"* %d EXISTS\r\n" % view.exists
        if not self.options.rev2:
            out += b"* %d RECENT\r\n" % len(view.recent)
            unseen = next((i for i, u in enumerate(view.uids, 1)
                           if "\\Seen" not in view.flags[u].split()), None)
            if unseen:
                out += b"* OK [UNSEEN %d] First unseen message\r\n" % unseen
        out += b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % mailbox.uidvalidity
        out += b"* OK [UIDNEXT %d] Predicted next UID\r\n" % mailbox.uidnext
        if self.options.condstore:
            out += b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % mailbox.highestmodseq
        if self.options.rev2:
            out += b"* LIST () \"/\" " + self._name(mailbox.name) + b"\r\n"
        if qresync is not None:
            out += self._qresync_replay(mailbox.uidvalidity, *qresync)
        code = "READ-ONLY" if readonly else "READ-WRITE"
        self.events.emit("imap-select", self.id, account=self.account, mailbox=mailbox.name)
        return bytes(out) + _line(tag, "OK", f"{'EXAMINE' if readonly else 'SELECT'} completed",
                                  code), Action.NONE

    def _qresync_params(self, r: Reader) -> tuple:
        """RFC 7162 §3.2.5: (uidvalidity modseq [known-uids [seq-match]])."""
        r.expect(b"(")
        uidvalidity = r.nz_number()
        r.sp()
        modseq = r.number()
        known = None
        if r.accept(b" "):
            if r.peek() != b"(":
                known = r.sequence_set()
                r.accept(b" ")
            if r.peek() == b"(":
                r.list_of(r.sequence_set)          # seq-match data: an optimisation only
        r.expect(b")")
        return uidvalidity, modseq, known

    def _qresync_replay(self, uidvalidity: int, client_validity: int, modseq: int,
                        known: SequenceSet | None) -> bytes:
        """VANISHED (EARLIER) and FETCH for what changed since the client's MODSEQ."""
        view = self.view
        if view is None or client_validity != uidvalidity:
            return b""
        out = bytearray()
        gone = self.store.expunged_since(view.id, modseq)
        if known is not None and gone:
            ranges = known.resolve(view.uidnext)
            gone = [u for u in gone if any(lo <= u <= hi for lo, hi in ranges)]
        if gone:
            out += b"* VANISHED (EARLIER) " + render.sequence_set(gone).encode() + b"\r\n"
        for s in self.store.message_states(view.id, modseq):
            if view.seq_of(s.uid):
                out += view.flags_response(s.uid, self.options, with_uid=True)
        return bytes(out)

    def _close_view(self) -> None:
        self._stop_idle()
        self.view = None
        self.saved = []

    def cmd_create(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        r.sp()
        name = self._mailbox_arg(r)
        special = None
        if r.accept(b" ("):                             # RFC 6154 §3 CREATE-SPECIAL-USE
            r.expect(b"USE ")
            uses = r.list_of(r.flag)
            r.expect(b")")
            special = uses[0] if uses else None
            if special and special not in ("\\Drafts", "\\Sent", "\\Trash", "\\Junk",
                                           "\\Archive", "\\All", "\\Flagged"):
                raise No(f"Unsupported special use {special}", "USEATTR")
        r.end()
        return self._create(tag, name.rstrip(HIERARCHY), special)

    async def _create(self, tag: str, name: str, special: str | None) -> Outcome:
        if name == "INBOX":
            raise No("INBOX exists already", "ALREADYEXISTS")
        await self.store.create_mailbox(self.account_id, name, special)
        return self._ok(tag, "CREATE completed")

    def cmd_delete(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        return self._delete(tag, name)

    async def _delete(self, tag: str, name: str) -> Outcome:
        if self.view is not None and self.view.mailbox.name == name:
            self._close_view()
            self.state = State.AUTHENTICATED
        await self.store.delete_mailbox(self.account_id, name)
        return self._ok(tag, "DELETE completed")

    def cmd_rename(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        r.sp()
        old = self._mailbox_arg(r)
        r.sp()
        new = self._mailbox_arg(r)
        r.end()
        return self._rename(tag, old, new)

    async def _rename(self, tag: str, old: str, new: str) -> Outcome:
        await self.store.rename_mailbox(self.account_id, old, new)
        return self._ok(tag, "RENAME completed")

    def cmd_subscribe(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        return self._subscribe(tag, r, True)

    def cmd_unsubscribe(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        return self._subscribe(tag, r, False)

    async def _subscribe(self, tag: str, r: Reader, on: bool) -> Outcome:
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        await self.store.subscribe(self.account_id, name, on)
        return self._ok(tag, f"{'SUBSCRIBE' if on else 'UNSUBSCRIBE'} completed")

    def cmd_list(self, tag: str, r: Reader) -> Outcome:
        from .listing import list_command
        return list_command(self, tag, r, lsub=False)

    def cmd_lsub(self, tag: str, r: Reader) -> Outcome:
        from .listing import list_command
        return list_command(self, tag, r, lsub=True)

    def cmd_status(self, tag: str, r: Reader) -> Outcome:
        r.sp()
        name = self._mailbox_arg(r)
        r.sp()
        items = [i.upper() for i in r.list_of(r.atom)]
        r.end()
        bad = [i for i in items if i not in STATUS_ITEMS]
        if bad or not items:
            raise ParseError(f"unknown STATUS item {bad[0] if bad else ''}".strip())
        mailbox = self.store.mailbox(self.account_id, name)
        if mailbox is None:
            raise No("No such mailbox", "NONEXISTENT")
        return self.status_line(mailbox, items) + \
            self._done(tag, "OK", "STATUS completed"), Action.NONE

    def status_line(self, mailbox, items: list[str]) -> bytes:
        values = {"UIDNEXT": mailbox.uidnext, "UIDVALIDITY": mailbox.uidvalidity,
                  "HIGHESTMODSEQ": mailbox.highestmodseq,
                  "APPENDLIMIT": self.config.limits.max_message_size}
        if {"MESSAGES", "UNSEEN", "DELETED", "SIZE", "RECENT"} & set(items):
            counts = self.store.mailbox_counts(mailbox.id)
            values.update(MESSAGES=counts.messages, UNSEEN=counts.unseen,
                          DELETED=counts.deleted, SIZE=counts.size,
                          RECENT=min(counts.messages, mailbox.uidnext - mailbox.recent_uid))
        text = " ".join(f"{item} {values[item]}" for item in items)
        return b"* STATUS " + self._name(mailbox.name) + b" (" + text.encode() + b")\r\n"

    def cmd_append(self, tag: str, r: Reader) -> Coroutine[Any, Any, Outcome]:
        r.sp()
        name = self._mailbox_arg(r)
        messages = []
        while r.accept(b" "):                          # RFC 3502 MULTIAPPEND
            flags: list[str] = []
            when = time.time()
            if r.peek() == b"(":
                flags = r.flag_list()
                if "\\Recent" in flags or "\\*" in flags:
                    raise ParseError("\\Recent and \\* cannot be set")
                r.sp()
            if r.peek() == b'"':
                when = r.date_time().timestamp()
                r.sp()
            if r.accept(b"UTF8 ("):                     # RFC 6855 §4
                content = r.literal(binary=True)
                r.expect(b")")
            else:
                content = r.literal(binary=True)
            messages.append((content, flags, when))
        r.end()
        if not messages:
            raise ParseError("APPEND needs a message literal")
        return self._append(tag, name, messages)

    async def _append(self, tag: str, name: str, messages: list) -> Outcome:
        mailbox = self.store.mailbox(self.account_id, name)
        if mailbox is None:
            raise No("No such mailbox; create it first", "TRYCREATE")
        uids = []
        uidvalidity = mailbox.uidvalidity
        for content, flags, when in messages:
            if not content:
                raise No("Empty message")
            uidvalidity, uid = await self.store.append(mailbox.id, content, flags, when)
            uids.append(uid)
        self.events.emit("imap-append", self.id, account=self.account, mailbox=name,
                         count=len(uids))
        return self._ok(tag, "APPEND completed",
                        f"APPENDUID {uidvalidity} {render.sequence_set(uids)}")

    def cmd_idle(self, tag: str, r: Reader) -> Outcome:
        r.end()
        self.idle_tag = tag
        out = b"+ idling\r\n"
        if self.view is not None:
            out += sync(self.store, self.view, self.options, expunge_ok=True)
            if self.wake is not None:
                self.watch.watch(self.view.id, self.wake)
        return out, Action.NONE

    def idle_update(self) -> bytes:
        """Called by the connection when the watched mailbox changed during IDLE."""
        if self.idle_tag is None or self.view is None:
            return b""
        return sync(self.store, self.view, self.options, expunge_ok=True)

    def _idle_input(self, line: bytes) -> Outcome:
        tag, self.idle_tag = self.idle_tag or "*", None
        self._stop_idle()
        if line.rstrip(b"\r\n").upper() != b"DONE":
            return _line(tag, "BAD", "Expected DONE"), Action.NONE
        return self._ok(tag, "IDLE terminated", expunge_ok=True)

    def _stop_idle(self) -> None:
        if self.view is not None and self.wake is not None:
            self.watch.unwatch(self.view.id, self.wake)

    def cmd_getquotaroot(self, tag: str, r: Reader) -> Outcome:
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        if self.store.mailbox(self.account_id, name) is None:
            raise No("No such mailbox", "NONEXISTENT")
        quota = self.store.quota(self.account_id)
        out = b"* QUOTAROOT " + self._name(name) + (b' ""' if quota.limit else b"") + b"\r\n"
        if quota.limit:
            out += self._quota_line(quota)
        return out + self._done(tag, "OK", "GETQUOTAROOT completed"), Action.NONE

    def cmd_getquota(self, tag: str, r: Reader) -> Outcome:
        r.sp()
        root = r.astr()
        r.end()
        quota = self.store.quota(self.account_id)
        if root != "" or not quota.limit:
            raise No("No such quota root", "NONEXISTENT")
        return self._quota_line(quota) + self._done(tag, "OK", "GETQUOTA completed"), \
            Action.NONE

    @staticmethod
    def _quota_line(quota) -> bytes:
        # RFC 9208 §5.1: STORAGE in units of 1024 octets.
        return (f'* QUOTA "" (STORAGE {(quota.used + 1023) // 1024} {quota.limit // 1024})'
                "\r\n").encode()

    def cmd_setquota(self, tag: str, r: Reader) -> Outcome:
        raise No("Quotas are set by the administrator (mailwright user quota)", "NOPERM")

    def cmd_compress(self, tag: str, r: Reader) -> Outcome:
        r.sp()
        if r.atom().upper() != "DEFLATE":
            raise ParseError("only DEFLATE is supported")
        r.end()
        if self.compress_requested:
            raise No("Compression is already active", "COMPRESSIONACTIVE")
        self.compress_requested = True
        return _line(tag, "OK", "DEFLATE active"), Action.COMPRESS

    # --- selected -------------------------------------------------------------------------
    def cmd_close(self, tag: str, r: Reader) -> Outcome | Coroutine[Any, Any, Outcome]:
        r.end()
        view = self.view
        assert view is not None
        self._close_view()
        self.state = State.AUTHENTICATED
        if view.readonly:
            return _line(tag, "OK", "CLOSE completed"), Action.NONE
        return self._close_expunge(tag, view)

    async def _close_expunge(self, tag: str, view: View) -> Outcome:
        # RFC 9051 §6.4.1: expunge \Deleted messages silently.
        deleted = self.store.search(view.id, ("flag", "\\Deleted", True))
        await self.store.expunge(view.id, deleted)
        return _line(tag, "OK", "CLOSE completed"), Action.NONE

    def cmd_unselect(self, tag: str, r: Reader) -> Outcome:
        r.end()
        self._close_view()
        self.state = State.AUTHENTICATED
        return _line(tag, "OK", "UNSELECT completed"), Action.NONE

    def _writable(self) -> View:
        assert self.view is not None
        if self.view.readonly:
            raise No("Mailbox is read-only", "READ-ONLY")
        return self.view

    def cmd_expunge(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Outcome]:
        uids = None
        if uid:
            r.sp()
            seqset = r.sequence_set()
            uids = self.view.uids_for(seqset, True, self.saved)
        r.end()
        return self._expunge(tag, uids)

    async def _expunge(self, tag: str, only: list[int] | None) -> Outcome:
        view = self._writable()
        deleted = self.store.search(view.id, ("flag", "\\Deleted", True))
        if only is not None:
            wanted = set(only)
            deleted = [u for u in deleted if u in wanted]
        await self.store.expunge(view.id, deleted)
        return self._ok(tag, "EXPUNGE completed", expunge_ok=True)

    def _set(self, r: Reader, uid: bool) -> list[int]:
        assert self.view is not None
        return self.view.uids_for(r.sequence_set(), uid, self.saved)

    def cmd_fetch(self, tag: str, r: Reader, uid: bool
                  ) -> Outcome | Coroutine[Any, Any, Outcome]:
        r.sp()
        seqset = r.sequence_set()
        uids = self.view.uids_for(seqset, uid, self.saved)
        r.sp()
        items = fetch.parse_items(r)
        changedsince = None
        vanished = False
        if r.accept(b" ("):                              # RFC 7162 §3.1.4, §3.2.6
            while True:
                word = r.atom().upper()
                if word == "CHANGEDSINCE":
                    r.sp()
                    changedsince = r.nz_number()
                elif word == "VANISHED" and uid and self.options.qresync:
                    vanished = True
                else:
                    raise ParseError(f"unknown FETCH modifier {word}")
                if r.close():
                    break
                r.sp()
            if vanished and changedsince is None:
                raise ParseError("VANISHED needs CHANGEDSINCE")
        r.end()
        if uid and not any(i.name == "UID" for i in items):
            items.insert(0, fetch.Item("UID"))
        if changedsince is not None:
            self.options.condstore = True
            if not any(i.name == "MODSEQ" for i in items):
                items.append(fetch.Item("MODSEQ"))
        view = self.view
        assert view is not None
        prefix = b""
        if vanished:
            # RFC 7162 §3.2.6: expunged UIDs within the command's UID set.
            ranges = view.uid_ranges(seqset, True, self.saved)
            gone = [u for u in self.store.expunged_since(view.id, changedsince)
                    if any(lo <= u <= hi for lo, hi in ranges)]
            if gone:
                prefix = b"* VANISHED (EARLIER) " + render.sequence_set(gone).encode() + \
                    b"\r\n"
        seen = not view.readonly and any(i.sets_seen for i in items)
        needs_blob = any(i.needs_blob for i in items)
        if not seen and not needs_blob and len(uids) <= SYNC_FETCH_MAX:
            return prefix + self._fetch_rows(uids, items, changedsince, None) + \
                self._done(tag, "OK", "FETCH completed", expunge_ok=uid), Action.NONE
        return self._fetch_stream(tag, uids, items, changedsince, seen, prefix, uid)

    def _fetch_rows(self, uids: list[int], items: list[fetch.Item], changedsince: int | None,
                    blobs: dict[str, bytes] | None) -> bytes:
        view = self.view
        out = bytearray()
        needs_meta = any(i.needs_meta for i in items)
        for data in self.store.message_data(view.id, uids, needs_meta):
            if changedsince is not None and data.modseq <= changedsince:
                continue
            seq = view.seq_of(data.uid)
            if seq is None:
                continue
            out += fetch.render_message(seq, data, items,
                                        blobs.get(data.blob) if blobs else None,
                                        view.flag_list(data.uid), view.modseq_of.get(data.uid),
                                        self._utf8)
        return bytes(out)

    async def _fetch_stream(self, tag: str, uids: list[int], items: list[fetch.Item],
                            changedsince: int | None, seen: bool, prefix: bytes,
                            uid: bool) -> Outcome:
        view = self.view
        out = bytearray(prefix)
        quiet: set[int] = set()
        if seen:
            changed, _ = await self.store.store_flags(view.id, uids, "add", ["\\Seen"])
            for s in changed:
                view.flags[s.uid] = s.flags
                view.modseq_of[s.uid] = s.modseq
                quiet.add(s.uid)
            if changed and not any(i.name == "FLAGS" for i in items):
                items = [*items, fetch.Item("FLAGS")]
        needs_meta = any(i.needs_meta for i in items)
        needs_blob = any(i.needs_blob for i in items)
        # In slices, so that a FETCH of a whole large mailbox never sits in memory.
        for start in range(0, len(uids), 64):
            for data in self.store.message_data(view.id, uids[start:start + 64], needs_meta):
                if changedsince is not None and data.modseq <= changedsince:
                    continue
                seq = view.seq_of(data.uid)
                if seq is None:
                    continue
                blob = None
                if needs_blob:
                    blob = await self._read(data.blob, data.size)
                out += fetch.render_message(seq, data, items, blob, view.flag_list(data.uid),
                                            view.modseq_of.get(data.uid), self._utf8)
                if len(out) >= STREAM_CHUNK and self.send is not None:
                    await self.send(out)
                    out = bytearray()       # the transport may still hold the old one
        return bytes(out) + self._done(tag, "OK", "FETCH completed", expunge_ok=uid,
                                       quiet=quiet), Action.NONE

    async def _read(self, digest: str, size: int) -> bytes:
        try:
            if size > READ_IN_THREAD:
                return await asyncio.to_thread(self.store.read_blob, digest)
            return self.store.read_blob(digest)
        except OSError:
            raise No("Message content unavailable", "SERVERBUG") from None

    def cmd_store(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Outcome]:
        r.sp()
        uids = self._set(r, uid)
        r.sp()
        unchangedsince = None
        if r.accept(b"("):
            r.expect(b"UNCHANGEDSINCE ")
            unchangedsince = r.number()
            r.expect(b") ")
        action = r.atom().upper()
        mode = {"FLAGS": "set", "+FLAGS": "add", "-FLAGS": "remove"}
        silent = action.endswith(".SILENT")
        base = action.removesuffix(".SILENT")
        if base not in mode:
            raise ParseError(f"expected FLAGS, +FLAGS or -FLAGS, got {action}")
        r.sp()
        if r.peek() == b"(":
            flags = r.flag_list()
        else:
            flags = [r.flag()]
            while r.accept(b" "):
                flags.append(r.flag())
        r.end()
        flags = [normalize_flag(f) for f in flags]
        if "\\Recent" in flags or "\\*" in flags:
            raise ParseError("\\Recent and \\* cannot be stored")
        return self._store(tag, uids, mode[base], flags, silent, unchangedsince, uid)

    async def _store(self, tag: str, uids: list[int], mode: str, flags: list[str],
                     silent: bool, unchangedsince: int | None, uid: bool) -> Outcome:
        view = self._writable()
        if unchangedsince is not None:
            self.options.condstore = True
        changed, failed = await self.store.store_flags(view.id, uids, mode, flags,
                                                       unchangedsince)
        out = bytearray()
        for s in changed:
            view.flags[s.uid] = s.flags
            view.modseq_of[s.uid] = s.modseq
        changed_uids = {s.uid for s in changed}
        failed_set = set(failed)
        for u in uids:
            if u in failed_set or view.seq_of(u) is None or u in view.vanished:
                continue
            # RFC 7162 §3.1.3: with CONDSTORE, a silent STORE still reports MODSEQ.
            if not silent or (self.options.condstore and u in changed_uids):
                out += view.flags_response(u, self.options, with_uid=uid)
        code = ""
        if failed:
            numbers = failed if uid else sorted(view.seq_of(u) for u in failed)
            code = "MODIFIED " + render.sequence_set(numbers)
        return bytes(out) + self._done(tag, "OK", "STORE completed", code, expunge_ok=uid,
                                       quiet=set(uids)), Action.NONE

    def cmd_copy(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Outcome]:
        return self._copy_command(tag, r, uid, move=False)

    def cmd_move(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Outcome]:
        return self._copy_command(tag, r, uid, move=True)

    def _copy_command(self, tag: str, r: Reader, uid: bool, move: bool
                      ) -> Coroutine[Any, Any, Outcome]:
        r.sp()
        uids = self._set(r, uid)
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        return self._copy(tag, uids, name, move)

    async def _copy(self, tag: str, uids: list[int], name: str, move: bool) -> Outcome:
        view = self._writable() if move else self.view
        target = self.store.mailbox(self.account_id, name)
        if target is None:
            raise No("No such mailbox; create it first", "TRYCREATE")
        verb = "MOVE" if move else "COPY"
        uids = [u for u in uids if u not in view.vanished]
        if not uids:
            return self._ok(tag, f"{verb} completed (nothing to do)", expunge_ok=move)
        validity, pairs = await self.store.copy(view.id, uids, target.id, move)
        code = ""
        if pairs:
            code = (f"COPYUID {validity} {render.sequence_set([s for s, _ in pairs])} "
                    f"{render.sequence_set([d for _, d in pairs])}")
        if move:
            # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            head = f"* OK [{code}] Moved\r\n".encode() if code else b""
            return head + self._done(tag, "OK", "MOVE completed", expunge_ok=True), \
                Action.NONE
        return self._ok(tag, "COPY completed", code)

    def cmd_search(self, tag: str, r: Reader, uid: bool) -> Outcome:
        r.sp()
        returns = None
        if r.accept(b"RETURN ("):                       # RFC 4731 ESEARCH
            returns = []
            while not r.close():
                r.accept(b" ")
                returns.append(r.atom().upper())
            r.sp()
            bad = [x for x in returns if x not in ("MIN", "MAX", "ALL", "COUNT", "SAVE")]
            if bad:
                raise ParseError(f"unknown RETURN option {bad[0]}")
            if not returns:
                returns = ["ALL"]
        try:
            keys = search.parse_program(r)
        except search.BadCharset:
            raise No("Supported charsets: UTF-8, US-ASCII", "BADCHARSET (UTF-8 US-ASCII)") \
                from None
        found = self._search(("and", keys))
        view = self.view
        result = found if uid else [view.seq_of(u) for u in found]
        modseq = None
        if any(search.uses(k, "modseq") for k in keys) and found:
            modseq = max(view.modseq_of.get(u, 0) for u in found)
        if returns is not None and "SAVE" in returns:
            self.saved = found
            returns = [x for x in returns if x != "SAVE"]
            if not returns:
                return self._ok(tag, "SEARCH completed, result saved")
        if returns is not None or self.options.rev2:
            return self._esearch(tag, result, returns or ["ALL"], uid, modseq) + \
                self._done(tag, "OK", "SEARCH completed"), Action.NONE
        line = b"* SEARCH" + b"".join(b" %d" % n for n in result)
        if modseq is not None:
            line += b" (MODSEQ %d)" % modseq
        return line + b"\r\n" + self._done(tag, "OK", "SEARCH completed"), Action.NONE

    def _esearch(self, tag: str, result: list[int], returns: list[str], uid: bool,
                 modseq: int | None) -> bytes:
        parts = [f'* ESEARCH (TAG "{tag}")'] + (["UID"] if uid else [])
        if result:
            if "MIN" in returns:
                parts.append(f"MIN {min(result)}")
            if "MAX" in returns:
                parts.append(f"MAX {max(result)}")
            if "ALL" in returns:
                parts.append(f"ALL {render.sequence_set(sorted(result))}")
        if "COUNT" in returns:
            parts.append(f"COUNT {len(result)}")
        if modseq is not None:
            parts.append(f"MODSEQ {modseq}")
        return " ".join(parts).encode() + b"\r\n"

    def _search(self, key: tuple) -> list[int]:
        """Resolve what only the session knows (sequence numbers, \\Recent, "$"),
        then let the store search."""
        view = self.view
        return [u for u in self.store.search(view.id, self._resolve(key))
                if view.seq_of(u) is not None]

    def _resolve(self, key: tuple) -> tuple:
        view = self.view
        kind = key[0]
        if kind in ("seq", "uid"):
            return ("uids", view.uid_ranges(key[1], kind == "uid", self.saved))
        if kind == "recent":
            return ("uids", [(u, u) for u in sorted(view.recent)])
        if kind == "and":
            return ("and", [self._resolve(k) for k in key[1]])
        if kind == "or":
            return ("or", self._resolve(key[1]), self._resolve(key[2]))
        if kind == "not":
            return ("not", self._resolve(key[1]))
        return key

    def cmd_sort(self, tag: str, r: Reader, uid: bool) -> Outcome:
        r.sp()
        criteria = threads.parse_sort_criteria(r)
        r.sp()
        try:
            keys = search.parse_program(_charset_required(r))
        except search.BadCharset:
            raise No("Supported charsets: UTF-8, US-ASCII", "BADCHARSET (UTF-8 US-ASCII)") \
                from None
        found = self._search(("and", keys))
        ordered = threads.sort(self.store.sort_keys(self.view.id, found), criteria)
        result = ordered if uid else [self.view.seq_of(u) for u in ordered]
        return b"* SORT" + b"".join(b" %d" % n for n in result) + b"\r\n" + \
            self._done(tag, "OK", "SORT completed"), Action.NONE

    def cmd_thread(self, tag: str, r: Reader, uid: bool) -> Outcome:
        r.sp()
        algorithm = r.atom().upper()
        if algorithm not in ("REFERENCES", "ORDEREDSUBJECT"):
            raise ParseError(f"unknown threading algorithm {algorithm}")
        r.sp()
        try:
            keys = search.parse_program(_charset_required(r))
        except search.BadCharset:
            raise No("Supported charsets: UTF-8, US-ASCII", "BADCHARSET (UTF-8 US-ASCII)") \
                from None
        found = self._search(("and", keys))
        rows = self.store.sort_keys(self.view.id, found)
        tree = threads.thread(rows, algorithm)
        number = (lambda u: u) if uid else self.view.seq_of
        return b"* THREAD " + threads.render_threads(tree, number) + b"\r\n" + \
            self._done(tag, "OK", "THREAD completed"), Action.NONE


def _charset_required(r: Reader) -> Reader:
    """SORT and THREAD name the charset without the CHARSET keyword (RFC 5256 §3)."""
    charset = r.astr().upper()
    if charset not in search.CHARSETS:
        raise search.BadCharset(charset)
    r.sp()
    return r
