"""One session's view of its selected mailbox (RFC 9051 §5.5, §7.4, §7.5.1).

The view is the list of UIDs in sequence-number order and the flags the client
was last told. Changes made by other sessions (or deliveries) are found through
the mailbox's HIGHESTMODSEQ and the expunge tombstones, and announced only when
the protocol allows: new messages and flag changes after any command, EXPUNGE
only where sequence numbers may shift (not during FETCH, STORE or SEARCH).
Until then an expunged message keeps its sequence number.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ..store.base import MailStore
from ..store.mailboxes import Mailbox
from . import render
from .parser import SequenceSet


@dataclass
class Options:
    """What the client enabled (RFC 5161) that changes what we send."""
    rev2: bool = False
    utf8: bool = False
    condstore: bool = False
    qresync: bool = False


@dataclass
class View:
    mailbox: Mailbox
    readonly: bool
    uids: list[int]
    flags: dict[int, str]
    modseq: int                   # HIGHESTMODSEQ this view reflects
    uidnext: int
    recent: set[int] = field(default_factory=set)
    vanished: set[int] = field(default_factory=set)   # expunged, not yet announced
    modseq_of: dict[int, int] = field(default_factory=dict)   # per UID (CONDSTORE)
    _index: dict[int, int] | None = None

    @property
    def id(self) -> int:
        return self.mailbox.id

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        if self._index is None:
            self._index = {u: i for i, u in enumerate(self.uids, 1)}
        return self._index.get(uid)

    def uids_for(self, seqset: SequenceSet, by_uid: bool, saved: list[int]) -> list[int]:
        """The UIDs (ascending) a sequence set names; "$" is the saved search result."""
        if seqset.saved:
            live = set(self.uids)
            return [u for u in saved if u in live]
        if by_uid:
            if not self.uids:
                return []
            out: set[int] = set()
            for lo, hi in seqset.resolve(self.uids[-1]):
                a = bisect.bisect_left(self.uids, lo)
                b = bisect.bisect_right(self.uids, hi)
                out.update(self.uids[a:b])
            return sorted(out)
        n = len(self.uids)
        seqs: set[int] = set()
        for lo, hi in seqset.resolve(n):
            seqs.update(range(max(lo, 1), min(hi, n) + 1))
        return [self.uids[s - 1] for s in sorted(seqs)]

    def uid_ranges(self, seqset: SequenceSet, by_uid: bool, saved: list[int]
                   ) -> list[tuple[int, int]]:
        """As uids_for, as UID ranges for a store query (UID sets stay ranges)."""
        if by_uid and not seqset.saved:
            top = max(self.uids[-1] if self.uids else 0, self.uidnext - 1)
            return seqset.resolve(top)
        runs: list[list[int]] = []
        for u in self.uids_for(seqset, by_uid, saved):
            if runs and self.seq_of(u) == self.seq_of(runs[-1][1]) + 1:
                runs[-1][1] = u             # consecutive messages: one UID range
            else:
                runs.append([u, u])
        return [(lo, hi) for lo, hi in runs]

    def remove(self, uids: set[int]) -> list[int]:
        """Drop expunged UIDs; their sequence numbers, highest first, for EXPUNGE."""
        seqs = [i for i, u in enumerate(self.uids, 1) if u in uids]
        self.uids = [u for u in self.uids if u not in uids]
        for u in uids:
            self.flags.pop(u, None)
            self.recent.discard(u)
        self._index = None
        return sorted(seqs, reverse=True)

    def flags_response(self, uid: int, options: Options, with_uid: bool = False) -> bytes:
        seq = self.seq_of(uid)
        items = [b"FLAGS " + self.flag_list(uid)]
        if with_uid or options.qresync:
            items.insert(0, b"UID %d" % uid)
        if options.condstore:
            items.append(b"MODSEQ (%d)" % self.modseq_of.get(uid, self.modseq))
        return b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n"

    def flag_list(self, uid: int) -> bytes:
        flags = self.flags.get(uid, "")
        if uid in self.recent:
            flags = (flags + " \\Recent").strip()
        return b"(" + flags.encode() + b")"


def open_view(store: MailStore, mailbox: Mailbox, readonly: bool, recent_from: int) -> View:
    states = store.message_states(mailbox.id)
    view = View(mailbox, readonly, [s.uid for s in states], {s.uid: s.flags for s in states},
                mailbox.highestmodseq, mailbox.uidnext)
    view.modseq_of = {s.uid: s.modseq for s in states}
    view.recent = {s.uid for s in states if s.uid >= recent_from} if recent_from else set()
    return view


def sync(store: MailStore, view: View, options: Options, expunge_ok: bool,
         quiet: set[int] | None = None) -> bytes:
    """Untagged responses bringing the client up to date (RFC 9051 §7.4, §7.5).
    `quiet`: UIDs whose flag changes the current command reports itself."""
    versions = store.mailbox_versions([view.id])
    out = bytearray()
    if view.id in versions:
        uidnext, modseq = versions[view.id]
        if modseq != view.modseq or uidnext != view.uidnext:
            _catch_up(store, view, options, modseq, out, quiet or set())
    if expunge_ok and view.vanished:
        gone, view.vanished = view.vanished, set()
        if options.qresync:
            out += b"* VANISHED " + render.sequence_set(sorted(gone)).encode() + b"\r\n"
            view.remove(gone)
        else:
            for seq in view.remove(gone):
                out += b"* %d EXPUNGE\r\n" % seq
    return bytes(out)


def _catch_up(store: MailStore, view: View, options: Options, modseq: int,
              out: bytearray, quiet: set[int]) -> None:
    changed = store.message_states(view.id, view.modseq)
    expunged = set(store.expunged_since(view.id, view.modseq))
    known = set(view.uids)
    view.vanished |= expunged & known
    new = [s for s in changed if s.uid not in known and s.uid not in expunged
           and (not view.uids or s.uid > view.uids[-1])]
    flagged = [s for s in changed if s.uid in known and s.uid not in view.vanished]
    if new:
        for s in new:
            view.uids.append(s.uid)
            view.flags[s.uid] = s.flags
            view.modseq_of[s.uid] = s.modseq
            if not view.readonly:
                view.recent.add(s.uid)
        view._index = None
        out += b"* %d EXISTS\r\n" % view.exists
        if not options.rev2:
            out += b"* %d RECENT\r\n" % len(view.recent)
    for s in flagged:
        old, old_modseq = view.flags.get(s.uid), view.modseq_of.get(s.uid, 0)
        view.flags[s.uid] = s.flags
        view.modseq_of[s.uid] = s.modseq
        report = old != s.flags or (options.condstore and s.modseq > old_modseq)
        if report and s.uid not in quiet:
            out += view.flags_response(s.uid, options)
    view.modseq = max(modseq, view.modseq)
    view.uidnext = max(view.uidnext, (view.uids[-1] + 1) if view.uids else 0)
