"""IMAP commands on mailboxes (RFC 9051 §6.3): SELECT / EXAMINE (with CONDSTORE and
QRESYNC), CREATE, DELETE, RENAME, SUBSCRIBE / UNSUBSCRIBE, LIST / LSUB, STATUS and
APPEND. A mixin of ImapSession, like AuthCommands and SelectedCommands: it uses the
session's state (store, account, view, options) and helpers (_done, _ok, _name,
_mailbox_arg, _decode_name)."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from ..events.types import Event
from ..message.encoding import encode_binary_parts
from ..net.connection import Action
from ..store.mailboxes import HIERARCHY
from . import render
from .base import Answer, No, State, tagged
from .listing import list_responses, parse_list
from .parser import STATUS_ATTS, ParseError, Reader, SequenceSet
from .selected import claim_on_select, claim_recent, open_view


class MailboxCommands:
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
        bad = [i for i in items if i not in STATUS_ATTS]   # the LIST-STATUS items (RFC 5819)
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
