"""One session's view of its selected mailbox (RFC 9051 §5.5, §7.4, §7.5.1).

The view is the list of UIDs in sequence-number order and the flags the client
was last told. Changes made by other sessions (or deliveries) are found through
the mailbox's UIDNEXT, HIGHESTMODSEQ and the expunge tombstones, and announced
only when the protocol allows: new messages and flag changes after any command,
EXPUNGE only where sequence numbers may shift (not during FETCH, STORE or SEARCH).
Until then an expunged message keeps its sequence number.

\\Recent (RFC 3501 §2.3.2) belongs to exactly one session: the first read-write
session told of the message. The mailbox's recent_uid marks where the unclaimed
messages start; a read-write view claims a UID range in the store (one atomic
step, so two sessions, even in two processes, never both win a message) before it
announces those messages. Messages that arrive after the claim wait for the next
one. A read-only view (EXAMINE) shows the unclaimed messages as \\Recent and claims
nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..store.base import MailStore
from ..store.mailboxes import SYSTEM_FLAGS, Mailbox, MessageState
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
    uidnext: int                  # UIDs below this have been considered by the view
    options: Options = field(default_factory=Options)
    recent: set[int] = field(default_factory=set)
    vanished: set[int] = field(default_factory=set)   # expunged, not yet announced
    modseq_of: dict[int, int] = field(default_factory=dict)   # per UID (CONDSTORE)
    keywords: dict[str, str] = field(default_factory=dict)   # told in FLAGS, by lower case
    claimed_to: int = 0           # read-write: \Recent decided for UIDs below this
    won: list[tuple[int, int]] = field(default_factory=list)  # claimed [lo, hi) ranges
    highestmodseq_told: bool = False   # RFC 7162 §3.1: HIGHESTMODSEQ sent for this view
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

    def flags_response(self, uid: int, options: Options | None = None,
                       with_uid: bool = False) -> bytes:
        """An untagged FETCH of a message's flags. RFC 7162 §3.1: once CONDSTORE is
        enabled, every such FETCH carries UID and MODSEQ."""
        options = options or self.options
        seq = self.seq_of(uid)
        items = [b"FLAGS " + self.flag_list(uid)]
        if with_uid or options.qresync or options.condstore:
            items.insert(0, b"UID %d" % uid)
        if options.condstore:
            items.append(b"MODSEQ (%d)" % self.modseq_of.get(uid, self.modseq))
        return b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n"

    def flag_list(self, uid: int) -> bytes:
        flags = self.flags.get(uid, "")
        # RFC 9051 removed \Recent: an IMAP4rev2 client is never shown it.
        if uid in self.recent and not self.options.rev2:
            flags = (flags + " \\Recent").strip()
        return b"(" + flags.encode() + b")"

    # --- FLAGS and PERMANENTFLAGS (RFC 9051 §7.3.5, §7.1) -------------------------
    def flags_lines(self) -> bytes:
        """FLAGS and PERMANENTFLAGS: the system flags and every keyword told so far."""
        keywords = sorted(self.keywords.values(), key=str.lower)
        out = b"* FLAGS (" + " ".join([*SYSTEM_FLAGS, *keywords]).encode() + b")\r\n"
        permanent = b"()" if self.readonly else \
            b"(" + " ".join([*SYSTEM_FLAGS, *keywords, "\\*"]).encode() + b")"
        return out + b"* OK [PERMANENTFLAGS " + permanent + b"] Flags permitted\r\n"

    def learn_keywords(self, flag_texts: Iterable[str]) -> bool:
        """Note the keywords these flags use; True if one was not in FLAGS yet."""
        grew = False
        for text in flag_texts:
            for flag in text.split():
                if not flag.startswith("\\") and flag.lower() not in self.keywords:
                    self.keywords[flag.lower()] = flag
                    grew = True
        return grew

    def keyword_update(self, flag_texts: Iterable[str]) -> bytes:
        """RFC 9051 §7.3.5: a FLAGS (and PERMANENTFLAGS) update before any FETCH that
        shows a keyword the client was not told of."""
        return self.flags_lines() if self.learn_keywords(flag_texts) else b""

    # --- \Recent (RFC 3501 §2.3.2) ------------------------------------------------
    def claim_due(self, uidnext: int) -> bool:
        return not self.readonly and uidnext > self.claimed_to

    def claimed(self, old_recent_uid: int, up_to: int) -> None:
        """The store moved recent_uid from old_recent_uid to (at least) up_to: the
        UIDs from there to up_to are this session's \\Recent messages."""
        lo = max(old_recent_uid, self.claimed_to)
        if lo < up_to:
            self.won.append((lo, up_to))
        self.claimed_to = max(self.claimed_to, up_to)

    def won_recent(self, uid: int) -> bool:
        return any(lo <= uid < hi for lo, hi in self.won)


async def open_view(store: MailStore, mailbox: Mailbox, readonly: bool, options: Options) -> View:
    states = await store.message_states(mailbox.id)
    uids = [s.uid for s in states]
    view = View(mailbox, readonly, uids, {s.uid: s.flags for s in states},
                mailbox.highestmodseq, max(mailbox.uidnext, uids[-1] + 1 if uids else 0),
                options)
    view.modseq_of = {s.uid: s.modseq for s in states}
    view.learn_keywords(view.flags.values())
    if readonly:
        # EXAMINE claims nothing: the unclaimed messages show as \Recent
        view.recent = {u for u in uids if u >= mailbox.recent_uid}
    return view


async def claim_recent(store: MailStore, view: View, up_to: int | None = None) -> None:
    """Claim \\Recent for the messages below up_to (default: the mailbox's UIDNEXT)
    that no other session claimed, before they are announced."""
    if up_to is None:
        versions = await store.mailbox_versions([view.id])
        if view.id not in versions:
            return
        up_to = versions[view.id][0]
    if view.claim_due(up_to):
        view.claimed(await store.claim_recent(view.id, up_to), up_to)


async def claim_on_select(store: MailStore, view: View) -> None:
    """SELECT (read-write) claims every message of the new view it can."""
    await claim_recent(store, view, view.uidnext)
    view.recent = {u for u in view.uids if view.won_recent(u)}


async def sync(store: MailStore, view: View, options: Options, expunge_ok: bool,
         quiet: set[int] | None = None) -> bytes:
    """Untagged responses bringing the client up to date (RFC 9051 §7.4, §7.5).
    `quiet`: UIDs whose flag changes the current command reports itself."""
    versions = await store.mailbox_versions([view.id])
    if view.id not in versions:
        return b""
    uidnext, modseq = versions[view.id]
    changed: list[MessageState] = []
    if modseq > view.modseq:
        changed = await _changes(store, view)
    arrived = await _arrivals(store, view, uidnext) if uidnext > view.uidnext else []
    out = bytearray(view.keyword_update(s.flags for s in changed + arrived))
    for s in changed:
        old, old_modseq = view.flags.get(s.uid), view.modseq_of.get(s.uid, 0)
        view.flags[s.uid] = s.flags
        view.modseq_of[s.uid] = s.modseq
        report = old != s.flags or (options.condstore and s.modseq > old_modseq)
        if report and s.uid not in (quiet or ()):
            out += view.flags_response(s.uid, options)
    view.modseq = max(modseq, view.modseq)
    # Expunges before new messages: EXISTS then counts what is really there.
    if expunge_ok and view.vanished:
        out += _expunges(view, options)
    if arrived:
        out += await _announce(store, view, options, arrived)
    return bytes(out)


async def _changes(store: MailStore, view: View) -> list[MessageState]:
    """Flag changes of known messages since view.modseq; expunges noted as vanished."""
    # Known: in the view (seq_of's index is kept between commands; a set of every UID
    # built here cost each command O(messages)).
    view.vanished |= {u for u in await store.expunged_since(view.id, view.modseq)
                      if view.seq_of(u) is not None}
    return [s for s in await store.message_states(view.id, view.modseq)
            if view.seq_of(s.uid) is not None and s.uid not in view.vanished]


async def _arrivals(store: MailStore, view: View, uidnext: int) -> list[MessageState]:
    """Messages from view.uidnext on that may be announced now: for a read-write view
    only those whose \\Recent was claimed; the rest wait for the next claim."""
    limit = view.claimed_to if not view.readonly else None
    arrived = [s for s in await store.message_states(view.id, from_uid=view.uidnext)
               if limit is None or s.uid < limit]
    top = uidnext if limit is None else min(uidnext, limit)
    if arrived:
        top = max(top, arrived[-1].uid + 1)
    view.uidnext = max(view.uidnext, top)
    return arrived


def _expunges(view: View, options: Options) -> bytes:
    gone, view.vanished = view.vanished, set()
    if options.qresync:
        view.remove(gone)
        return b"* VANISHED " + render.sequence_set(sorted(gone)).encode() + b"\r\n"
    return b"".join(b"* %d EXPUNGE\r\n" % seq for seq in view.remove(gone))


async def _announce(store: MailStore, view: View, options: Options,
              arrived: list[MessageState]) -> bytes:
    unclaimed_from = None
    if view.readonly:
        box = await store.mailbox_by_id(view.id)
        unclaimed_from = box.recent_uid if box else 0
    for s in arrived:
        view.uids.append(s.uid)
        view.flags[s.uid] = s.flags
        view.modseq_of[s.uid] = s.modseq
        recent = view.won_recent(s.uid) if unclaimed_from is None else \
            s.uid >= unclaimed_from
        if recent:
            view.recent.add(s.uid)
    view._index = None
    view.won = [(lo, hi) for lo, hi in view.won if hi > view.uidnext]
    out = b"* %d EXISTS\r\n" % view.exists
    if not options.rev2:
        out += b"* %d RECENT\r\n" % len(view.recent)
    return out
