"""The mail store interface: what the protocol engines and the CLI may ask of it.

SQLiteStore implements it for one node; a PostgreSQL backend for several
nodes implements the same methods, so nothing above this line changes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from ..address import Address
from ..auth.passwords import Credentials
from .blobs import Content, Spool
from .mailboxes import MailboxStore

# RFC 6154 special-use mailboxes created with every account.
DEFAULT_MAILBOXES = (
    ("INBOX", None), ("Drafts", "\\Drafts"), ("Sent", "\\Sent"),
    ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Archive", "\\Archive"),
)


# Reading a blob larger than this may touch the disk for a while: callers on the
# event loop hand such reads to a thread (store.read_blob is blocking).
READ_IN_THREAD = 256 * 1024


class StoreError(Exception):
    """A refused administrative change, phrased for the admin."""


@dataclass(frozen=True)
class Target:
    """Where one RCPT ends up after alias expansion."""
    address: str                   # final address
    account_id: int | None = None  # set for a local account, None for a remote address

    @property
    def is_local(self) -> bool:
        return self.account_id is not None


@dataclass(frozen=True)
class RemoteRecipient:
    address: str
    notify: str | None = None      # RFC 3461 NOTIFY=
    orcpt: str | None = None       # RFC 3461 ORCPT=


@dataclass
class Delivery:
    """One accepted message: stored once, referenced by every local copy and the queue."""
    message_id: str
    mail_from: str                               # '' for <>
    local_accounts: list[int] = field(default_factory=list)
    local_content: Content = b""                 # with Return-Path (RFC 5321 §4.4)
    remote: list[RemoteRecipient] = field(default_factory=list)
    relay_content: Content = b""                 # without Return-Path
    body: str | None = None
    smtputf8: bool = False
    ret: str | None = None
    envid: str | None = None
    sender_account: str | None = None
    quarantine: frozenset[int] = frozenset()     # local accounts that get it in Junk


@dataclass(frozen=True)
class DKIMKeyInfo:
    domain: str
    name: str              # the key set, as `dkim generate --selector` named it
    selector: str          # as published
    algorithm: str         # rsa-sha256 | ed25519-sha256
    path: str              # private key file
    txt: str               # the TXT record at <selector>._domainkey.<domain>
    active: bool
    created: float


@dataclass(frozen=True)
class MaildropMessage:
    uid: int
    size: int
    blob: str


@dataclass(frozen=True)
class Maildrop:
    mailbox_id: int
    uidvalidity: int
    messages: list[MaildropMessage]


@dataclass(frozen=True)
class QueuedRecipient:
    id: int
    address: str
    notify: str | None
    orcpt: str | None
    state: str              # pending | deferred | delivered | bounced | held
    attempts: int
    next_attempt: float
    last_reply: str | None
    delay_warned: bool = False


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    message_id: str
    mail_from: str
    blob: str
    size: int
    body: str | None
    smtputf8: bool
    ret: str | None
    envid: str | None
    created: float
    recipients: list[QueuedRecipient]


@dataclass(frozen=True)
class RecipientUpdate:
    """The outcome of one delivery attempt for one queued recipient."""
    recipient_id: int
    state: str              # delivered | deferred | bounced
    reply: str
    next_attempt: float = 0.0
    delay_warned: bool = False
    address: str = ""
    remote: str = ""        # host [ip] that answered ("" when none was reached)
    tls: str = ""           # protocol and cipher used, "" for plaintext


@dataclass(frozen=True)
class AccountInfo:
    address: str
    created: float
    messages: int
    size: int


@dataclass(frozen=True)
class AliasInfo:
    source: str
    targets: list[str]


class MailStore(MailboxStore):
    # --- administration (used by the CLI; blocking) -------------------------
    @abc.abstractmethod
    def add_domain(self, domain: str) -> str: ...
    @abc.abstractmethod
    def remove_domain(self, domain: str, force: bool = False) -> None: ...
    @abc.abstractmethod
    def list_domains(self) -> list[str]: ...
    @abc.abstractmethod
    def add_account(self, address: Address, password: str) -> None: ...
    @abc.abstractmethod
    def set_password(self, address: Address, password: str) -> None: ...
    @abc.abstractmethod
    def remove_account(self, address: Address) -> None: ...
    @abc.abstractmethod
    def list_accounts(self, domain: str | None = None) -> list[AccountInfo]: ...
    @abc.abstractmethod
    def add_alias(self, source: str, targets: list[str]) -> None: ...
    @abc.abstractmethod
    def remove_alias(self, source: str) -> None: ...
    @abc.abstractmethod
    def list_aliases(self, domain: str | None = None) -> list[AliasInfo]: ...

    # --- lookups on the hot path (fast, indexed) ----------------------------
    @abc.abstractmethod
    def is_local_domain(self, domain: str) -> bool: ...
    @abc.abstractmethod
    def resolve(self, address: Address) -> list[Target] | None:
        """Targets for a local address ([] if unknown), None if the domain is not local."""
    @abc.abstractmethod
    def credentials(self, username: str) -> Credentials | None: ...
    @abc.abstractmethod
    def may_send_as(self, account: str, address: Address) -> bool: ...

    # --- durable writes ------------------------------------------------------
    def spool(self) -> Spool:
        """Where a message being received goes as it arrives (a store with files
        spills large ones to a temporary file next to its blobs)."""
        return Spool(None)

    @abc.abstractmethod
    async def deliver(self, delivery: Delivery) -> None:
        """Returns once content and metadata are durable (fsynced, committed)."""
    @abc.abstractmethod
    def record_event(self, ts: float, type: str, session: str | None,
                     message_id: str | None, data: dict) -> None:
        """Queue an event row; written with the next batch, never blocking the caller."""

    @abc.abstractmethod
    def read_blob(self, digest: str) -> bytes: ...

    # --- email authentication ------------------------------------------------
    @abc.abstractmethod
    def add_dkim_keys(self, keys: list[DKIMKeyInfo]) -> None: ...
    @abc.abstractmethod
    def dkim_keys(self, domain: str | None = None) -> list[DKIMKeyInfo]: ...
    @abc.abstractmethod
    def activate_dkim_keys(self, domain: str, name: str) -> None: ...
    @abc.abstractmethod
    def remove_dkim_keys(self, domain: str, name: str) -> list[str]: ...
    @abc.abstractmethod
    def record_dmarc(self, row: tuple) -> None: ...

    # --- outbound queue ------------------------------------------------------
    @abc.abstractmethod
    async def queue_claim(self, now: float, limit: int, lease: float) -> list[QueuedMessage]:
        """Claim due recipients (pending/deferred, time come, not leased) for `lease`
        seconds; PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED."""
    @abc.abstractmethod
    def queue_release_leases(self) -> int: ...
    @abc.abstractmethod
    def queue_messages(self) -> list[QueuedMessage]: ...
    @abc.abstractmethod
    def queue_message(self, message_id: str) -> QueuedMessage | None: ...
    @abc.abstractmethod
    async def queue_update(self, queue_id: int, updates: list[RecipientUpdate]) -> bool:
        """Record attempt outcomes; drop the message once every recipient is final.
        Returns True when the message left the queue."""
    @abc.abstractmethod
    def queue_attempts(self, message_id: str) -> list[dict]: ...
    @abc.abstractmethod
    def queue_set_state(self, message_id: str | None, state: str, now: float) -> int:
        """Admin: hold / release / retry (now) recipients of one message or all; returns count."""
    @abc.abstractmethod
    def queue_delete(self, message_id: str) -> bool: ...

    # --- POP3 --------------------------------------------------------------
    @abc.abstractmethod
    def maildrop(self, account: str) -> Maildrop: ...
    @abc.abstractmethod
    async def pop3_update(self, mailbox_id: int, deleted: list[int],
                          retrieved: list[int]) -> int: ...
    @abc.abstractmethod
    def set_pop3_expire(self, domain: str, days: int | None) -> None: ...
    @abc.abstractmethod
    def pop3_expire_days(self, account: str) -> int | None: ...
    @abc.abstractmethod
    async def expire_pop3(self, now: float) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...
