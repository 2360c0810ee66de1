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
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..auth import sasl
from ..auth.driver import Authenticator
from ..auth.lockout import AuthLockout
from ..config import Config
from ..events.log import EventLog
from ..events.types import Event
from ..message.encoding import encode_binary_parts
from ..net.connection import Action, LineSession, TLSInfo
from ..store.base import MailStore
from ..store.mailboxes import (
    HIERARCHY,
    MailboxError,
)
from . import mutf7, render
from .auth_commands import AuthCommands
from .base import COMMAND_STATES, Answer, No, State, tagged
from .listing import list_responses, parse_list
from .notify import MailboxWatch
from .parser import (
    CONTINUE,
    STATUS_ATTS,
    CommandFramer,
    LineTooLong,
    ParseError,
    Reader,
    SequenceSet,
    TooBig,
    command_tag,
)
from .selected import Options, View, claim_on_select, claim_recent, open_view, sync
from .selected_commands import SelectedCommands

LINE_LIMIT = 64 * 1024
# RFC 9051 §5.4: the autologout timer is at least 30 minutes; before login shorter.
AUTOLOGOUT = 1800.0
PREAUTH_TIMEOUT = 60.0
STATUS_ITEMS = STATUS_ATTS              # the same items as LIST-STATUS (RFC 5819)

_serial = itertools.count()
_TAG = secrets.token_hex(2).upper()


class ImapSession(AuthCommands, SelectedCommands, LineSession):
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
        self.sasl = Authenticator(sasl.Offer("imap", config.imap.allow_plaintext_auth), store,
                                  lockout, events, client_ip, self.id)
        self.sasl_tag = ""                     # the AUTHENTICATE command's, while it runs
        self.idle_tag: str | None = None
        self.closed = False
        self.errors = 0                        # BAD responses written
        self._answered_bad = False             # the response being written is a BAD
        self.send: Callable[[bytes], Awaitable[None]] | None = None   # set by the connection
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

    def cmd_select(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        return self._select(tag, r, readonly=False)

    def cmd_examine(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        return self._select(tag, r, readonly=True)

    async def _select(self, tag: str, r: Reader, readonly: bool) -> Answer:
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
        mailbox = await self.store.mailbox(self.account_id, name)
        if mailbox is None:
            return bytes(out) + tagged(tag, "NO", "No such mailbox", "NONEXISTENT"), Action.NONE
        if condstore:
            self.options.condstore = True
        view = await open_view(self.store, mailbox, readonly, self.options)
        if not readonly:
            await claim_on_select(self.store, view)
        self.view = view
        self.state = State.SELECTED
        out += view.flags_lines()
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
            view.highestmodseq_told = True
            out += b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % view.modseq
        if self.options.rev2:
            out += b"* LIST () \"/\" " + self._name(mailbox.name) + b"\r\n"
        if qresync is not None:
            out += await self._qresync_replay(mailbox.uidvalidity, *qresync)
        code = "READ-ONLY" if readonly else "READ-WRITE"
        self.events.emit(Event.IMAP_SELECT, self.id, account=self.account, mailbox=mailbox.name)
        return bytes(out) + tagged(tag, "OK", f"{'EXAMINE' if readonly else 'SELECT'} completed",
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

    async def _qresync_replay(self, uidvalidity: int, client_validity: int, modseq: int,
                        known: SequenceSet | None) -> bytes:
        """VANISHED (EARLIER) and FETCH for what changed since the client's MODSEQ."""
        view = self.view
        if view is None or client_validity != uidvalidity:
            return b""
        out = bytearray()
        gone = await self.store.expunged_since(view.id, modseq)
        if known is not None and gone:
            ranges = known.resolve(view.uidnext)
            gone = [u for u in gone if any(lo <= u <= hi for lo, hi in ranges)]
        if gone:
            out += b"* VANISHED (EARLIER) " + render.sequence_set(gone).encode() + b"\r\n"
        for s in await self.store.message_states(view.id, modseq):
            if view.seq_of(s.uid):
                out += view.flags_response(s.uid, self.options, with_uid=True)
        return bytes(out)

    def _close_view(self) -> None:
        self._stop_idle()
        self.view = None
        self.saved = []

    def cmd_create(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
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

    async def _create(self, tag: str, name: str, special: str | None) -> Answer:
        if name == "INBOX":
            raise No("INBOX exists already", "ALREADYEXISTS")
        await self.store.create_mailbox(self.account_id, name, special)
        return await self._ok(tag, "CREATE completed")

    def cmd_delete(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        return self._delete(tag, name)

    async def _delete(self, tag: str, name: str) -> Answer:
        if self.view is not None and self.view.mailbox.name == name:
            self._close_view()
            self.state = State.AUTHENTICATED
        await self.store.delete_mailbox(self.account_id, name)
        return await self._ok(tag, "DELETE completed")

    def cmd_rename(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        r.sp()
        old = self._mailbox_arg(r)
        r.sp()
        new = self._mailbox_arg(r)
        r.end()
        return self._rename(tag, old, new)

    async def _rename(self, tag: str, old: str, new: str) -> Answer:
        await self.store.rename_mailbox(self.account_id, old, new)
        return await self._ok(tag, "RENAME completed")

    def cmd_subscribe(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        return self._subscribe(tag, r, True)

    def cmd_unsubscribe(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        return self._subscribe(tag, r, False)

    async def _subscribe(self, tag: str, r: Reader, on: bool) -> Answer:
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        await self.store.subscribe(self.account_id, name, on)
        return await self._ok(tag, f"{'SUBSCRIBE' if on else 'UNSUBSCRIBE'} completed")

    def cmd_list(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        return self._list(tag, r, lsub=False)

    def cmd_lsub(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
        return self._list(tag, r, lsub=True)

    async def _list(self, tag: str, r: Reader, lsub: bool) -> Answer:
        cmd = parse_list(r, lsub)
        out = await list_responses(cmd, self.store, self.account_id, self._utf8, self.status_line)
        return out + await self._done(tag, "OK", f"{'LSUB' if lsub else 'LIST'} completed"), \
            Action.NONE

    async def cmd_status(self, tag: str, r: Reader) -> Answer:
        r.sp()
        name = self._mailbox_arg(r)
        r.sp()
        items = [i.upper() for i in r.list_of(r.atom)]
        r.end()
        bad = [i for i in items if i not in STATUS_ITEMS]
        if bad or not items:
            raise ParseError(f"unknown STATUS item {bad[0] if bad else ''}".strip())
        mailbox = await self.store.mailbox(self.account_id, name)
        if mailbox is None:
            raise No("No such mailbox", "NONEXISTENT")
        if "HIGHESTMODSEQ" in items:
            self.options.condstore = True           # RFC 7162 §3.1: enabling command
        return await self.status_line(mailbox, items) + \
            await self._done(tag, "OK", "STATUS completed"), Action.NONE

    async def status_line(self, mailbox, items: list[str]) -> bytes:
        values = {"UIDNEXT": mailbox.uidnext, "UIDVALIDITY": mailbox.uidvalidity,
                  "HIGHESTMODSEQ": mailbox.highestmodseq,
                  "APPENDLIMIT": self.config.limits.max_message_size}
        if {"MESSAGES", "UNSEEN", "DELETED", "SIZE", "RECENT"} & set(items):
            counts = await self.store.mailbox_counts(mailbox.id)
            values.update(MESSAGES=counts.messages, UNSEEN=counts.unseen,
                          DELETED=counts.deleted, SIZE=counts.size)
        if "RECENT" in items:
            values["RECENT"] = await self._recent_count(mailbox.id)
        text = " ".join(f"{item} {values[item]}" for item in items)
        return b"* STATUS " + self._name(mailbox.name) + b" (" + text.encode() + b")\r\n"

    async def _recent_count(self, mailbox_id: int) -> int:
        """RFC 3501 §6.3.10 STATUS RECENT as this session sees it: the messages no
        session claimed yet, and those this session holds as \\Recent."""
        count = await self.store.recent_count(mailbox_id)
        view = self.view
        if view is not None and view.id == mailbox_id and not view.readonly:
            count += len(view.recent - view.vanished)
        return count

    def cmd_append(self, tag: str, r: Reader) -> Coroutine[Any, Any, Answer]:
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

    async def _append(self, tag: str, name: str, messages: list) -> Answer:
        mailbox = await self.store.mailbox(self.account_id, name)
        if mailbox is None:
            raise No("No such mailbox; create it first", "TRYCREATE")
        uids = []
        uidvalidity = mailbox.uidvalidity
        for content, flags, when in messages:
            if not content:
                raise No("Empty message")
            # RFC 3516 §4.4: binary parts are stored base64-encoded (BINARY undoes it)
            content = encode_binary_parts(content)
            uidvalidity, uid = await self.store.append(mailbox.id, content, flags, when)
            uids.append(uid)
        self.events.emit(Event.IMAP_APPEND, self.id, account=self.account, mailbox=name,
                         count=len(uids))
        if self.view is not None and self.view.id == mailbox.id:
            # RFC 9051 §6.3.12: appending to the selected mailbox announces it now.
            await claim_recent(self.store, self.view)
        return await self._ok(tag, "APPEND completed",
                        f"APPENDUID {uidvalidity} {render.sequence_set(uids)}")

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
