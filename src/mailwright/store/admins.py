"""Web admin accounts and their browser sessions, as the store keeps them: an argon2
hash for each admin (never the password), the SHA-256 of each session's cookie token
(never the token). What they allow, and for how long, is admin/admins.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AdminUserRecord:
    id: int
    name: str
    password_hash: str           # argon2id (auth/passwords.py)
    created: float
    last_login: float | None


@dataclass(frozen=True)
class AdminSessionRecord:
    digest: str                  # hex SHA-256 of the cookie's token
    admin_id: int
    admin_name: str
    csrf: str                    # the session's synchronizer token for forms
    created: float
    last_seen: float


class AdminStore(Protocol):
    async def add_admin_user(self, name: str, password_hash: str,
                             created: float) -> AdminUserRecord:
        """A new admin (StoreError when the name is taken)."""
        ...

    async def admin_user(self, name: str) -> AdminUserRecord | None:
        ...

    async def admin_users(self) -> list[AdminUserRecord]:
        """Every admin, by name."""
        ...

    async def set_admin_password(self, name: str, password_hash: str) -> bool:
        """Replace the hash and end the admin's sessions; False: no such admin."""
        ...

    async def remove_admin_user(self, name: str) -> bool:
        """The admin and its sessions go; False: no such admin."""
        ...

    async def add_admin_session(self, digest: str, admin_id: int, csrf: str,
                                when: float) -> None:
        """A session begins (and the admin's last login is `when`)."""
        ...

    async def admin_session(self, digest: str) -> AdminSessionRecord | None:
        ...

    async def touch_admin_session(self, digest: str, when: float) -> None:
        ...

    async def remove_admin_sessions(self, *, digest: str | None = None,
                                    created_before: float | None = None,
                                    seen_before: float | None = None) -> int:
        """Delete the session `digest`, and those created or last seen before the given
        times (expired ones); how many went."""
        ...
