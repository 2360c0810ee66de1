"""Mailboxes and the messages in them: what IMAP and POP3 ask of the store.

Mailboxes, messages by UID, flags, MODSEQ (RFC 7162), expunge tombstones, search
(store/query.py), sort keys and quota (RFC 9208); the POP3 maildrop (RFC 1939).

Reads and writes are coroutines, so a backend over the network implements the
same protocol (SQLite runs its reads inline); writes return once committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ..message.meta import MessageMeta
from .query import Query

# RFC 9051 §2.3.2: system flags, matched case-insensitively and kept in this form.
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
HIERARCHY = "/"


class MailboxError(Exception):
    """A refused mailbox operation; `code` is the RFC 5530 response code."""

    def __init__(self, text: str, code: str = ""):
        super().__init__(text)
        self.code = code


class OverQuota(MailboxError):
    def __init__(self, text: str = "Quota exceeded"):
        super().__init__(text, "OVERQUOTA")


@dataclass(frozen=True)
class Mailbox:
    id: int
    name: str                     # UTF-8, "/" separated
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    recent_uid: int               # messages with UID >= this are \Recent for the next SELECT


# A Mailbox row as both backends select it, in the dataclass's order.
MAILBOX_COLUMNS = "id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_uid"


@dataclass(frozen=True)
class MailboxCounts:
    messages: int
    unseen: int
    deleted: int
    size: int


@dataclass(frozen=True)
class MessageState:
    uid: int
    flags: str                    # space separated
    modseq: int


@dataclass(frozen=True)
class MessageData:
    """What FETCH may need of one message, from one query."""
    uid: int
    flags: str
    modseq: int
    size: int
    internaldate: float
    blob: str
    envelope: bytes | None
    body: bytes | None
    bodystructure: bytes | None
    structure: str | None
    header: bytes | None


class FetchViews(NamedTuple):
    """A message's ENVELOPE, BODY and BODYSTRUCTURE as IMAP FETCH sends them (RFC 9051
    §7.5.2), kept with its metadata so FETCH never reads the message. Rendered by
    the protocol (imap/fetch.py `views`, handed to the store where it is made): the
    store only keeps the octets."""
    envelope: bytes
    body: bytes
    bodystructure: bytes


# How the store gets them: from a message's octets and its parse.
RenderViews = Callable[[bytes, MessageMeta], FetchViews]


@dataclass(frozen=True)
class NewMessage:
    """A message row to add: the blob it references and what IMAP keeps with it."""
    blob: str
    size: int
    internaldate: float
    flags: str
    message_id: str
    meta_id: int | None


@dataclass(frozen=True)
class Quota:
    used: int                     # octets
    limit: int                    # octets; 0: none
    messages: int

    def exceeded_by(self, size: int) -> bool:
        """Would `size` more octets go over the limit? (RFC 9208 §5.1 STORAGE)"""
        return bool(self.limit) and self.used + size > self.limit


@dataclass(frozen=True)
class MaildropMessage:
    uid: int
    size: int
    blob: str


@dataclass(frozen=True)
class Maildrop:
    """The INBOX as POP3 sees it at login (RFC 1939 §3): UIDVALIDITY, messages by UID."""
    mailbox_id: int
    uidvalidity: int
    messages: list[MaildropMessage]


MAX_MAILBOXES = 1000             # per account
MAX_SUBSCRIPTIONS = 1000         # per account
MAX_NAME = 512                   # octets, UTF-8


def valid_name(name: str) -> str | None:
    """Why a mailbox name cannot be created, or None."""
    if not name or len(name.encode()) > MAX_NAME:
        return "Mailbox name empty or too long"
    parts = name.split(HIERARCHY)
    if any(not p for p in parts):
        return "Empty hierarchy level in mailbox name"
    if any(c in name for c in "*%") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "Mailbox name contains wildcards or control characters"
    return None


def canonical_name(name: str) -> str:
    """INBOX is case-insensitive (RFC 9051 §5.1), also as a hierarchy's first level."""
    head, sep, rest = name.partition(HIERARCHY)
    if head.upper() == "INBOX":
        return "INBOX" + sep + rest
    return name


def apply_flags(old: str, mode: str, given: list[str]) -> str:
    """A message's flags after STORE (RFC 9051 §6.4.6): "set" replaces them, "add"
    and "remove" compare case-insensitively."""
    current = old.split()
    if mode == "set":
        return " ".join(given)
    lower = {f.lower() for f in given}
    if mode == "add":
        have = {f.lower() for f in current}
        return " ".join(current + [f for f in given if f.lower() not in have])
    return " ".join(f for f in current if f.lower() not in lower)


def flag_changes(rows, mode: str, given: list[str], unchangedsince: int | None,
                 modseq: int) -> tuple[list[MessageState], list[int]]:
    """A STORE over (uid, flags, modseq) rows: the messages whose flags change, with
    their new flags at `modseq`, and the UIDs left alone because they changed after
    UNCHANGEDSINCE (RFC 7162 §3.1.3)."""
    changed: list[MessageState] = []
    failed: list[int] = []
    for uid, old, mod in rows:
        if unchangedsince is not None and mod > unchangedsince:
            failed.append(uid)
            continue
        new = apply_flags(old, mode, given)
        if new != old:
            changed.append(MessageState(uid, new, modseq))
    return changed, failed


def normalize_flag(flag: str) -> str:
    if flag.startswith("\\"):
        for system in SYSTEM_FLAGS:
            if system.lower() == flag.lower():
                return system
    return flag


class MailboxStore(Protocol):
    # --- reads ----------------------------------------------------------------------------
    async def mailboxes(self, account_id: int) -> list[Mailbox]: ...
    async def mailbox(self, account_id: int, name: str) -> Mailbox | None: ...
    async def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None: ...
    async def mailbox_counts(self, mailbox_id: int) -> MailboxCounts: ...
    async def mailbox_versions(self, mailbox_ids: list[int]) -> dict[int, tuple[int, int]]:
        """(uidnext, highestmodseq) of each mailbox that still exists."""
        ...

    async def subscriptions(self, account_id: int) -> list[str]:
        """The subscribed names, sorted; they need not exist (RFC 9051 §6.3.7)."""
        ...

    async def recent_count(self, mailbox_id: int) -> int:
        """Messages no session has claimed as \\Recent (UID >= recent_uid)."""
        ...

    async def message_states(self, mailbox_id: int, since_modseq: int = 0,
                       from_uid: int = 0) -> list[MessageState]:
        """Messages by UID; with since_modseq, only those changed after it; with
        from_uid, only those with a UID from there on."""
        ...

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]: ...
    async def message_data(self, mailbox_id: int, uids: list[int], meta: bool
                     ) -> list[MessageData]: ...
    async def search(self, mailbox_id: int, key: Query) -> list[int]:
        """UIDs (ascending) of the messages matching a query (store/query.py)."""
        ...

    async def sort_keys(self, mailbox_id: int, uids: list[int]) -> list[tuple]:
        """(uid, internaldate, size, sent, base_subject, sort_from, sort_to, sort_cc,
        msgid, in_reply_to, refs, subject, display_from, display_to) for SORT and
        THREAD (the row imap/threads.py reads)."""
        ...

    async def quota(self, account_id: int) -> Quota: ...
    async def quota_limit(self, account_id: int) -> int:
        """The account's storage limit in octets; 0: none (no usage is summed)."""
        ...

    # --- writes (coroutines, return once committed) ------------------------------------
    async def create_mailbox(self, account_id: int, name: str,
                             special_use: str | None = None) -> Mailbox: ...
    async def delete_mailbox(self, account_id: int, name: str) -> None: ...
    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None: ...
    async def subscribe(self, account_id: int, name: str, subscribed: bool) -> None:
        """Add a name to the subscription list or remove it. Creating, deleting or
        renaming a mailbox leaves the list alone (RFC 3501 §6.3.6: the server does
        not remove a name from it on its own)."""
        ...

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        """\\Recent for a read-write session (RFC 3501 §2.3.2), in one atomic step:
        the mailbox's recent_uid before, now moved up to `up_to` (never back). The
        caller owns the UIDs from the returned value to up_to."""
        ...

    async def store_flags(self, mailbox_id: int, uids: list[int], mode: str,
                          flags: list[str], unchangedsince: int | None = None
                          ) -> tuple[list[MessageState], list[int]]:
        """mode: set | add | remove. Returns (changed messages, UIDs that failed
        the UNCHANGEDSINCE test, RFC 7162 §3.1.3)."""
        ...

    async def expunge(self, mailbox_id: int, uids: list[int]) -> list[int]:
        """Remove messages (tombstones kept for QRESYNC); the UIDs removed."""
        ...

    async def append(self, mailbox_id: int, content: bytes, flags: list[str],
                     internaldate: float) -> tuple[int, int]:
        """Store a message; (UIDVALIDITY, UID). Raises OverQuota when it would go over
        the account's limit (checked in the same transaction as the write)."""
        ...

    async def copy(self, source_id: int, uids: list[int], target_id: int, move: bool
                   ) -> tuple[int, list[tuple[int, int]]]:
        """(target UIDVALIDITY, [(source UID, new UID)]). Raises OverQuota."""
        ...

    async def backfill_meta(self) -> int:
        """Compute the parse-once metadata of messages stored without it; how many."""
        ...

    # --- administration -------------------------------------------------------------------
    async def set_quota(self, account: str, limit: int) -> None: ...


class Maildrops(Protocol):
    """POP3 (RFC 1939): the INBOX fixed at login, the UPDATE state, EXPIRE data."""

    # --- reads ----------------------------------------------------------------------------
    async def maildrop(self, account: str) -> Maildrop: ...
    async def pop3_retrieved_by(self, domain: str, when: float) -> dict[int, list[int]]:
        """Maildrop messages of the domain's accounts first downloaded over POP3 at
        or before `when`: UIDs by mailbox id (what an EXPIRE policy may remove)."""
        ...

    # --- writes ---------------------------------------------------------------------------
    async def pop3_update(self, mailbox_id: int, deleted: list[int],
                          retrieved: list[int]) -> int:
        """The UPDATE state (RFC 1939 §6): remove `deleted`, note the first download of
        `retrieved`; how many were removed."""
        ...
