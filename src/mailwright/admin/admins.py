"""Web admin accounts and their browser sessions.

An admin has a name and a password, kept as an argon2id hash (auth/passwords.py, as
for mail users). Logging in makes a session: a random 256-bit token for the cookie,
of which the store keeps only the SHA-256 (a stolen database opens no browser
session; as for API keys, a random token needs no slow hash), and a CSRF token bound
to it (the synchronizer token pattern: each form carries it, a post without it is
refused). A session ends on logout, when the admin's password changes or the admin
is removed, after `[http] admin_idle_timeout` seconds unused, and
`admin_session_lifetime` seconds after login whatever happens. Failed logins count
against the client IP in the same lockout as mail authentication (auth/lockout.py),
and are logged as its are: auth-ok / auth-fail / auth-locked events, protocol "web"
(so the event log, webhooks and the auth metrics see attacks on the admin too).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass

from ..auth.lockout import AuthLockout
from ..auth.passwords import dummy_hash, hash_password, verify_password
from ..events.types import Event
from ..store.admins import AdminUserRecord
from . import validate
from .context import Context
from .errors import Forbidden, Invalid, NotFound, store_refusals

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
TOUCH_EVERY = 60.0       # seconds: a session's last use is written at most this often
PROTOCOL, MECHANISM = "web", "password"   # as the auth events name them


@dataclass(frozen=True)
class AdminUser:
    name: str
    created: float
    last_login: float | None

    @classmethod
    def of(cls, r: AdminUserRecord) -> AdminUser:
        return cls(r.name, r.created, r.last_login)


@dataclass(frozen=True)
class WebSession:
    """A live browser session. `token` is the cookie's value: only at login (the store
    does not have it) and when looked up by it."""
    token: str
    admin: str
    csrf: str
    created: float
    expires: float           # the earlier of the idle and the absolute expiry


class LockedOut(Forbidden):
    """Too many failed logins from this address: try again after `seconds`."""

    def __init__(self, seconds: float):
        super().__init__(f"too many failed logins from this address: try again in "
                         f"{max(1, round(seconds))} seconds")
        self.seconds = seconds


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _name(text: str) -> str:
    name = text.strip()
    if not NAME.match(name):
        raise Invalid(f"invalid admin name {text!r}: 1 to 64 letters, digits or . _ @ + -, "
                      "starting with a letter or digit")
    return name


class Admins:
    def __init__(self, ctx: Context, lockout: AuthLockout | None = None):
        self.ctx = ctx
        self.store = ctx.store
        self.clock = ctx.clock
        self.settings = ctx.config.http
        # The server's own (shared with SMTP, IMAP and POP3) when it runs the web admin.
        self.lockout = lockout or AuthLockout(ctx.config.auth)

    async def add(self, name: str, password: str) -> AdminUser:
        name, password = _name(name), validate.password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        with store_refusals():
            return AdminUser.of(await self.store.add_admin_user(name, hashed, self.clock()))

    async def list(self) -> list[AdminUser]:
        return [AdminUser.of(r) for r in await self.store.admin_users()]

    async def set_password(self, name: str, password: str) -> AdminUser:
        """A new password; the admin's sessions end."""
        name, password = _name(name), validate.password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        if not await self.store.set_admin_password(name, hashed):
            raise NotFound(f"no admin named {name!r} (see: mailwright admin list)")
        return AdminUser.of(await self.store.admin_user(name))

    async def remove(self, name: str) -> AdminUser:
        record = await self.store.admin_user(_name(name))
        if record is None or not await self.store.remove_admin_user(record.name):
            raise NotFound(f"no admin named {name.strip()!r} (see: mailwright admin list)")
        return AdminUser.of(record)

    async def login(self, name: str, password: str, client_ip: str) -> WebSession:
        """A new session for the admin whose password this is. Refused (Invalid, after
        the lockout's delay) for a wrong name or password, without saying which; refused
        (LockedOut) at once while the client's address is locked out."""
        if left := self.lockout.locked_for(client_ip):
            self._locked(client_ip, left)
        record = await self.store.admin_user(name.strip())
        # An unknown name costs the same argon2 verification as a known one.
        ok = await asyncio.to_thread(verify_password,
                                     record.password_hash if record else dummy_hash(), password)
        if record is None or not ok:
            self.ctx.events.emit(Event.AUTH_FAIL, ip=client_ip, protocol=PROTOCOL,
                                 mechanism=MECHANISM, username=name.strip()[:100])
            delay = self.lockout.record_failure(client_ip)
            await asyncio.sleep(delay)
            if left := self.lockout.locked_for(client_ip):
                self._locked(client_ip, left)
            raise Invalid("wrong admin name or password")
        self.lockout.record_success(client_ip)
        self.ctx.events.emit(Event.AUTH_OK, ip=client_ip, account=record.name,
                             protocol=PROTOCOL, mechanism=MECHANISM)
        now = self.clock()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        await self.store.add_admin_session(_digest(token), record.id, csrf, now)
        await self.prune_sessions()    # expired ones of anyone, while we are writing
        return WebSession(token, record.name, csrf, now, self._expires(now, now))

    async def session(self, token: str) -> WebSession | None:
        """The live session of a cookie token; None when unknown or expired (an expired
        one is deleted on the way)."""
        if not token or len(token) > 128:
            return None
        digest = _digest(token)
        record = await self.store.admin_session(digest)
        if record is None:
            return None
        now = self.clock()
        if now >= self._expires(record.created, record.last_seen):
            await self.store.remove_admin_sessions(digest=digest)
            return None
        last_seen = record.last_seen
        if now - last_seen >= TOUCH_EVERY:
            await self.store.touch_admin_session(digest, now)
            last_seen = now
        return WebSession(token, record.admin_name, record.csrf, record.created,
                          self._expires(record.created, last_seen))

    async def logout(self, token: str) -> None:
        await self.store.remove_admin_sessions(digest=_digest(token))

    async def prune_sessions(self) -> int:
        """Delete every expired session (each login does); how many went."""
        now = self.clock()
        return await self.store.remove_admin_sessions(
            created_before=now - self.settings.admin_session_lifetime,
            seen_before=now - self.settings.admin_idle_timeout)

    def _locked(self, client_ip: str, left: float) -> None:
        self.ctx.events.emit(Event.AUTH_LOCKED, ip=client_ip, protocol=PROTOCOL,
                             seconds=round(left))
        raise LockedOut(left)

    def _expires(self, created: float, last_seen: float) -> float:
        return min(created + self.settings.admin_session_lifetime,
                   last_seen + self.settings.admin_idle_timeout)
