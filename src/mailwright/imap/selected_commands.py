"""IMAP commands of the selected state (RFC 9051 §6.4): CLOSE, UNSELECT, EXPUNGE,
FETCH, STORE, COPY, MOVE, SEARCH, SORT and THREAD, with their UID forms. A mixin of
ImapSession."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from ..net.connection import Action
from ..store import query
from ..store.mailboxes import normalize_flag
from . import fetch, render, search, threads
from .base import Answer, No, State, tagged
from .parser import ParseError, Reader
from .selected import View, claim_recent

STREAM_CHUNK = 256 * 1024
# A FETCH that streams reads the rows (and the small blobs) of this many messages at once.
FETCH_SLICE = 64
# A metadata-only FETCH of up to this many messages is answered at once; larger ones
# (and any that read message bodies) stream, so no response sits in memory whole.
SYNC_FETCH_MAX = 2000


class SelectedCommands:
    def cmd_close(self, tag: str, r: Reader) -> Answer | Coroutine[Any, Any, Answer]:
        r.end()
        view = self.view
        assert view is not None
        self._close_view()
        self.state = State.AUTHENTICATED
        if view.readonly:
            return tagged(tag, "OK", "CLOSE completed"), Action.NONE
        return self._close_expunge(tag, view)

    async def _close_expunge(self, tag: str, view: View) -> Answer:
        # RFC 9051 §6.4.1: expunge \Deleted messages silently.
        deleted = await self.store.search(view.id, query.Flag("\\Deleted"))
        await self.store.expunge(view.id, deleted)
        return tagged(tag, "OK", "CLOSE completed"), Action.NONE

    def cmd_unselect(self, tag: str, r: Reader) -> Answer:
        r.end()
        self._close_view()
        self.state = State.AUTHENTICATED
        return tagged(tag, "OK", "UNSELECT completed"), Action.NONE

    def _writable(self) -> View:
        assert self.view is not None
        if self.view.readonly:
            raise No("Mailbox is read-only", "READ-ONLY")
        return self.view

    def cmd_expunge(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Answer]:
        uids = None
        if uid:
            r.sp()
            seqset = r.sequence_set()
            uids = self.view.uids_for(seqset, True, self.saved)
        r.end()
        return self._expunge(tag, uids)

    async def _expunge(self, tag: str, only: list[int] | None) -> Answer:
        view = self._writable()
        deleted = await self.store.search(view.id, query.Flag("\\Deleted"))
        if only is not None:
            wanted = set(only)
            deleted = [u for u in deleted if u in wanted]
        await self.store.expunge(view.id, deleted)
        return await self._ok(tag, "EXPUNGE completed", expunge_ok=True)

    def _set(self, r: Reader, uid: bool) -> list[int]:
        assert self.view is not None
        return self.view.uids_for(r.sequence_set(), uid, self.saved)

    async def cmd_fetch(self, tag: str, r: Reader, uid: bool) -> Answer:
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
        if changedsince is not None and not any(i.name == "MODSEQ" for i in items):
            items.append(fetch.Item("MODSEQ"))
        if any(i.name == "MODSEQ" for i in items):
            self.options.condstore = True           # RFC 7162 §3.1: enabling command
        view = self.view
        assert view is not None
        prefix = b""
        if vanished:
            # RFC 7162 §3.2.6: expunged UIDs within the command's UID set.
            ranges = view.uid_ranges(seqset, True, self.saved)
            gone = [u for u in await self.store.expunged_since(view.id, changedsince)
                    if any(lo <= u <= hi for lo, hi in ranges)]
            if gone:
                prefix = b"* VANISHED (EARLIER) " + render.sequence_set(gone).encode() + \
                    b"\r\n"
        seen = not view.readonly and any(i.sets_seen for i in items)
        needs_blob = any(i.needs_blob for i in items)
        if not seen and not needs_blob and len(uids) <= SYNC_FETCH_MAX:
            return prefix + await self._fetch_rows(uids, items, changedsince) + \
                await self._done(tag, "OK", "FETCH completed", expunge_ok=uid), Action.NONE
        return await self._fetch_stream(tag, uids, items, changedsince, seen, prefix, uid)

    async def _fetch_rows(self, uids: list[int], items: list[fetch.Item],
                          changedsince: int | None) -> bytes:
        """A FETCH of metadata only, answered whole."""
        view = self.view
        out: list[bytes | memoryview] = []
        needs_meta = any(i.needs_meta for i in items)
        for data in await self.store.message_data(view.id, uids, needs_meta):
            if changedsince is not None and data.modseq <= changedsince:
                continue
            seq = view.seq_of(data.uid)
            if seq is None:
                continue
            out += fetch.render_message(seq, data, items, None, view.flag_list(data.uid),
                                        view.modseq_of.get(data.uid), self._utf8)
        return b"".join(out)

    async def _fetch_stream(self, tag: str, uids: list[int], items: list[fetch.Item],
                            changedsince: int | None, seen: bool, prefix: bytes,
                            uid: bool) -> Answer:
        view = self.view
        quiet: set[int] = set()
        if seen:
            changed, _ = await self.store.store_flags(view.id, uids, "add", ["\\Seen"])
            for s in changed:
                view.flags[s.uid] = s.flags
                view.modseq_of[s.uid] = s.modseq
                quiet.add(s.uid)
            if changed:
                items = self._with_seen_change(items)
        needs_meta = any(i.needs_meta for i in items)
        needs_blob = any(i.needs_blob for i in items)
        vanished = False
        # What is rendered and not yet written: buffers (blobs are not copied into the
        # response, see fetch.render_message), written together (one writev).
        pending: list[bytes | memoryview] = [prefix]
        size = len(prefix)
        # In slices, so that a FETCH of a whole large mailbox never sits in memory.
        for start in range(0, len(uids), FETCH_SLICE):
            rows = [(seq, data) for data in await self.store.message_data(
                        view.id, uids[start:start + FETCH_SLICE], needs_meta)
                    if (changedsince is None or data.modseq > changedsince)
                    and (seq := view.seq_of(data.uid)) is not None]
            # the small ones in one read for the slice; the others (and any that went
            # meanwhile: _read tells which) one at a time below
            blobs = await self.store.read_blobs([d.blob for _, d in rows]) if needs_blob \
                else {}
            for seq, data in rows:
                blob = None
                if needs_blob:
                    blob = blobs.get(data.blob)
                    if blob is None:
                        blob = await self._read(view.id, data.uid, data.blob)
                    if blob is None:
                        vanished = True
                        continue
                parts = fetch.render_message(seq, data, items, blob, view.flag_list(data.uid),
                                             view.modseq_of.get(data.uid), self._utf8)
                pending += parts
                size += sum(map(len, parts))
                if size >= STREAM_CHUNK and self.send is not None:
                    await self.send(pending)
                    pending, size = [], 0
        if vanished:
            # RFC 5530 §3 EXPUNGEISSUED; RFC 2180 §4.1.2 lets the others' data be sent.
            return b"".join(pending) + await self._done(
                tag, "NO", "Some of the requested messages no longer exist",
                "EXPUNGEISSUED", expunge_ok=uid, quiet=quiet), Action.NONE
        return b"".join(pending) + await self._done(tag, "OK", "FETCH completed",
                                                    expunge_ok=uid, quiet=quiet), Action.NONE

    def _with_seen_change(self, items: list[fetch.Item]) -> list[fetch.Item]:
        """A FETCH that set \\Seen reports the new flags (RFC 9051 §6.4.5), and with
        CONDSTORE enabled also UID and MODSEQ (RFC 7162 §3.1)."""
        wanted = ["UID", "FLAGS", "MODSEQ"] if self.options.condstore else ["FLAGS"]
        have = {i.name for i in items}
        return [*items, *(fetch.Item(name) for name in wanted if name not in have)]

    async def _read(self, mailbox_id: int, uid: int, digest: str) -> bytes | None:
        """The message's text; None when another session expunged it (and its blob
        went) since its row was read — that is a race every shared mailbox has, not
        a fault; a blob missing for a message still there is one."""
        try:
            return await self.store.read_blob(digest)
        except OSError:
            if not await self.store.message_data(mailbox_id, [uid], False):
                return None
            raise No("Message content unavailable", "SERVERBUG") from None

    def cmd_store(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Answer]:
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
                     silent: bool, unchangedsince: int | None, uid: bool) -> Answer:
        view = self._writable()
        if unchangedsince is not None:
            self.options.condstore = True
        changed, failed = await self.store.store_flags(view.id, uids, mode, flags,
                                                       unchangedsince)
        # RFC 9051 §7.3.5: a new keyword is announced in FLAGS before its FETCH.
        out = bytearray(view.keyword_update(s.flags for s in changed))
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
        return bytes(out) + await self._done(tag, "OK", "STORE completed", code, expunge_ok=uid,
                                       quiet=set(uids)), Action.NONE

    def cmd_copy(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Answer]:
        return self._copy_command(tag, r, uid, move=False)

    def cmd_move(self, tag: str, r: Reader, uid: bool) -> Coroutine[Any, Any, Answer]:
        return self._copy_command(tag, r, uid, move=True)

    def _copy_command(self, tag: str, r: Reader, uid: bool, move: bool
                      ) -> Coroutine[Any, Any, Answer]:
        r.sp()
        uids = self._set(r, uid)
        r.sp()
        name = self._mailbox_arg(r)
        r.end()
        return self._copy(tag, uids, name, move)

    async def _copy(self, tag: str, uids: list[int], name: str, move: bool) -> Answer:
        view = self._writable() if move else self.view
        target = await self.store.mailbox(self.account_id, name)
        if target is None:
            raise No("No such mailbox; create it first", "TRYCREATE")
        verb = "MOVE" if move else "COPY"
        uids = [u for u in uids if u not in view.vanished]
        if not uids:
            return await self._ok(tag, f"{verb} completed (nothing to do)", expunge_ok=move)
        validity, pairs = await self.store.copy(view.id, uids, target.id, move)
        if target.id == view.id:
            # Copies into the selected mailbox are new messages of it: told now.
            await claim_recent(self.store, view)
        code = ""
        if pairs:
            code = (f"COPYUID {validity} {render.sequence_set([s for s, _ in pairs])} "
                    f"{render.sequence_set([d for _, d in pairs])}")
        if move:
            # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            head = f"* OK [{code}] Moved\r\n".encode() if code else b""
            return head + await self._done(tag, "OK", "MOVE completed", expunge_ok=True), \
                Action.NONE
        return await self._ok(tag, "COPY completed", code)

    async def cmd_search(self, tag: str, r: Reader, uid: bool) -> Answer:
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
        keys = self._search_keys(r, charset_keyword=True)
        found = await self._search(keys)
        view = self.view
        result = found if uid else [view.seq_of(u) for u in found]
        by_modseq = any(query.contains(k, query.ModSeq) for k in keys)
        if by_modseq:
            self.options.condstore = True           # RFC 7162 §3.1: enabling command
        if returns is not None and "SAVE" in returns:
            self.saved = found
            returns = [x for x in returns if x != "SAVE"]
            if not returns:
                return await self._ok(tag, "SEARCH completed, result saved")
        if returns is None and self.options.rev2:
            returns = ["ALL"]
        modseq = self._result_modseq(found, returns) if by_modseq else None
        if returns is not None:
            return self._esearch(tag, result, returns, uid, modseq) + \
                await self._done(tag, "OK", "SEARCH completed"), Action.NONE
        line = b"* SEARCH" + b"".join(b" %d" % n for n in result)
        if modseq is not None:
            line += b" (MODSEQ %d)" % modseq
        return line + b"\r\n" + await self._done(tag, "OK", "SEARCH completed"), Action.NONE

    def _result_modseq(self, found: list[int], returns: list[str] | None) -> int | None:
        """RFC 7162 §3.1.5, RFC 4731 §3.2: the highest MODSEQ of the messages
        returned: every match for SEARCH, ALL or COUNT; else the MIN / MAX ones."""
        if not found:
            return None
        returned = found
        if returns is not None and not {"ALL", "COUNT"} & set(returns):
            returned = ([found[0]] if "MIN" in returns else []) + \
                ([found[-1]] if "MAX" in returns else [])
        return max(self.view.modseq_of.get(u, 0) for u in returned)

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

    @staticmethod
    def _search_keys(r: Reader, charset_keyword: bool) -> list:
        try:
            return search.parse_program(r, charset_keyword)
        except search.BadCharset:
            raise No("Supported charsets: UTF-8, US-ASCII", "BADCHARSET (UTF-8 US-ASCII)") \
                from None

    async def _search(self, keys: list) -> list[int]:
        """Resolve what only the session knows (sequence numbers, \\Recent, "$"),
        then let the store search for messages matching every key."""
        view = self.view
        found = await self.store.search(view.id, search.resolve(query.And(tuple(keys)),
                                                                self._uids))
        return [u for u in found if view.seq_of(u) is not None]

    def _uids(self, key: search.Sequence | search.UidSequence | search.Recent) -> query.Uids:
        view = self.view
        if isinstance(key, search.Recent):
            return query.Uids(tuple((u, u) for u in sorted(view.recent)))
        by_uid = isinstance(key, search.UidSequence)
        return query.Uids(tuple(view.uid_ranges(key.numbers, by_uid, self.saved)))

    async def cmd_sort(self, tag: str, r: Reader, uid: bool) -> Answer:
        r.sp()
        criteria = threads.parse_sort_criteria(r)
        r.sp()
        keys = self._search_keys(r, charset_keyword=False)
        found = await self._search(keys)
        ordered = threads.sort(await self.store.sort_keys(self.view.id, found), criteria)
        result = ordered if uid else [self.view.seq_of(u) for u in ordered]
        return b"* SORT" + b"".join(b" %d" % n for n in result) + b"\r\n" + \
            await self._done(tag, "OK", "SORT completed"), Action.NONE

    async def cmd_thread(self, tag: str, r: Reader, uid: bool) -> Answer:
        r.sp()
        algorithm = r.atom().upper()
        if algorithm not in ("REFERENCES", "ORDEREDSUBJECT"):
            raise ParseError(f"unknown threading algorithm {algorithm}")
        r.sp()
        keys = self._search_keys(r, charset_keyword=False)
        found = await self._search(keys)
        rows = await self.store.sort_keys(self.view.id, found)
        tree = threads.thread(rows, algorithm)
        number = (lambda u: u) if uid else self.view.seq_of
        return b"* THREAD " + threads.render_threads(tree, number) + b"\r\n" + \
            await self._done(tag, "OK", "THREAD completed"), Action.NONE
