"""The directory: domains, accounts, aliases, credentials and DKIM keys.

What the store keeps and looks up; what the lookups mean (alias expansion, the
catch-all, who may send as whom) is decided in delivery/recipients.py.

Every method is a coroutine, lookups as well as changes, so a backend over the
network (PostgreSQL) implements the same protocol; SQLite runs its lookups inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..address import Address
from ..auth.passwords import Credentials

# RFC 6154 special-use mailboxes created with every account.
DEFAULT_MAILBOXES = (
    ("INBOX", None), ("Drafts", "\\Drafts"), ("Sent", "\\Sent"),
    ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Archive", "\\Archive"),
)


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


class Directory(Protocol):
    # --- administration (a refusal is a StoreError with a message for the admin) -------
    async def add_domain(self, domain: str) -> str:
        """Add a local domain; its canonical (A-label) name."""
        ...

    async def remove_domain(self, domain: str, force: bool = False) -> None: ...
    async def list_domains(self) -> list[str]: ...
    async def set_pop3_expire(self, domain: str, days: int | None) -> None:
        """The domain's POP3 EXPIRE policy (RFC 2449 §6.7): days after download; None: never."""
        ...

    async def add_account(self, address: Address, password: str) -> None:
        """Create the account with DEFAULT_MAILBOXES (subscribed)."""
        ...

    async def set_password(self, address: Address, password: str) -> None: ...
    async def remove_account(self, address: Address) -> None: ...
    async def list_accounts(self, domain: str | None = None) -> list[AccountInfo]: ...
    async def add_alias(self, source: str, targets: list[str]) -> None:
        """Add targets to an alias ("@domain" is the domain's catch-all)."""
        ...

    async def remove_alias(self, source: str) -> None: ...
    async def list_aliases(self, domain: str | None = None) -> list[AliasInfo]: ...
    async def add_dkim_keys(self, keys: list[DKIMKeyInfo]) -> None: ...
    async def activate_dkim_keys(self, domain: str, name: str) -> None: ...
    async def remove_dkim_keys(self, domain: str, name: str) -> list[str]:
        """Retire a key set: the private key files to delete."""
        ...

    # --- lookups --------------------------------------------------------------------------
    async def is_local_domain(self, domain: str) -> bool: ...
    async def account_id(self, account: str) -> int | None:
        """The account of an address as typed (a login name), None if none."""
        ...

    async def find_account(self, address: Address) -> int | None:
        """The account with exactly this address, None if none."""
        ...

    async def alias(self, address: Address) -> list[str] | None:
        """The targets of the alias with this address, None if there is none."""
        ...

    async def catch_all(self, domain: str) -> list[str] | None:
        """The targets of the domain's catch-all alias ("@domain"), None if none."""
        ...

    async def credentials(self, username: str) -> Credentials | None: ...
    async def rehash_password(self, account: str, old_hash: str, new_hash: str) -> bool:
        """Replace the account's password hash if it is still old_hash (a login
        re-hashing with new argon2 parameters must not undo a concurrent change)."""
        ...
    async def dkim_keys(self, domain: str | None = None) -> list[DKIMKeyInfo]: ...
    async def pop3_expire_days(self, account: str) -> int | None:
        """The POP3 EXPIRE days of the account's domain; None: never."""
        ...

    async def pop3_expire_policies(self) -> dict[str, int]:
        """Every domain with a POP3 EXPIRE policy, with its days."""
        ...
