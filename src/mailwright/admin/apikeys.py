"""HTTP API keys: created (the token shown once), listed, revoked, and checked on each
request; what each scope may do.

A token is `mw_<prefix>_<secret>`: the prefix names the key in lists and finds it in
one indexed lookup, the secret is 256 random bits. The store keeps the SHA-256 of the
whole token, not the token: a slow password hash (argon2) protects guessable secrets,
and a 256-bit random one cannot be guessed, so one fast hash suffices (as for GitHub's
or Stripe's tokens), and every request can afford the check.

Scopes:
- admin: everything, on every domain;
- domain-admin: the listed domains' accounts, aliases, DKIM keys, DNS records, events,
  queue entries and webhooks, and sending from them;
- send: only sending (POST /api/v1/messages) from addresses of the listed domains.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from ..store.apikeys import ApiKeyRecord
from . import validate
from .context import Context
from .errors import Invalid, NotFound

TOKEN = re.compile(r"^mw_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
MAX_NAME = 64
TOUCH_EVERY = 60.0            # seconds: last_used is written at most this often per key


class Scope(StrEnum):
    ADMIN = "admin"
    DOMAIN_ADMIN = "domain-admin"
    SEND = "send"


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scope: Scope
    domains: tuple[str, ...]       # canonical; empty for admin keys
    created: float
    last_used: float | None
    revoked: float | None
    campaigns: bool = False        # every message it sends is tracked campaign mail

    @classmethod
    def of(cls, r: ApiKeyRecord) -> ApiKey:
        return cls(r.id, r.name, r.prefix, Scope(r.scope), r.domains, r.created,
                   r.last_used, r.revoked, r.campaigns)

    @property
    def is_admin(self) -> bool:
        return self.scope is Scope.ADMIN

    def may_manage(self, domain: str) -> bool:
        """Accounts, aliases, keys, records, events, queue entries of `domain`."""
        return self.is_admin or (self.scope is Scope.DOMAIN_ADMIN and domain in self.domains)

    def may_send_from(self, domain: str) -> bool:
        return self.is_admin or domain in self.domains

    @property
    def sender_domains(self) -> frozenset[str] | None:
        """The domains this key may send from; None: any local domain."""
        return None if self.is_admin else frozenset(self.domains)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    token: str                     # shown once: only its digest is kept


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiKeys:
    def __init__(self, ctx: Context):
        self.store = ctx.store
        self.clock = ctx.clock
        self._touched: dict[int, float] = {}

    async def create(self, name: str, scope: str, domains: list[str] | tuple[str, ...] = (),
                     campaigns: bool = False) -> CreatedKey:
        """campaigns: the messages the key sends are campaign mail (open and click
        tracking, one-click unsubscribe: README "Campaigns")."""
        name = name.strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise Invalid(f"a key name is 1 to {MAX_NAME} printable characters")
        try:
            kind = Scope(scope)
        except ValueError:
            raise Invalid(f"unknown scope {scope!r}: use one of "
                          f"{', '.join(s.value for s in Scope)}") from None
        names: list[str] = []
        for d in domains:
            canonical = await validate.existing_domain(
                self.store, d, hint=f"add it with: mailwright domain add {d}")
            if canonical not in names:
                names.append(canonical)
        if kind is Scope.ADMIN and names:
            raise Invalid("an admin key covers every domain: give no domains")
        if kind is not Scope.ADMIN and not names:
            raise Invalid(f"a {kind} key needs the domains it covers (--domain)")
        prefix = secrets.token_hex(6)
        token = f"mw_{prefix}_{secrets.token_urlsafe(32)}"
        record = await self.store.add_api_key(name, prefix, _digest(token), kind.value,
                                              tuple(names), self.clock(), campaigns)
        return CreatedKey(ApiKey.of(record), token)

    async def list(self) -> list[ApiKey]:
        return [ApiKey.of(r) for r in await self.store.api_keys()]

    async def revoke(self, key_id: int) -> ApiKey:
        record = await self.store.revoke_api_key(key_id, self.clock())
        if record is None:
            raise NotFound(f"no API key {key_id} (see: mailwright apikey list)")
        return ApiKey.of(record)

    async def authenticate(self, token: str) -> ApiKey | None:
        """The live key a bearer token belongs to; None for anything else."""
        m = TOKEN.match(token)
        if not m:
            return None
        record = await self.store.api_key(m[1])
        if record is None or record.revoked is not None \
                or not hmac.compare_digest(record.digest, _digest(token)):
            return None
        now = self.clock()
        if now - self._touched.get(record.id, 0.0) >= TOUCH_EVERY:
            self._touched[record.id] = now
            await self.store.touch_api_key(record.id, now)
        return ApiKey.of(record)
