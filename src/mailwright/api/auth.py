"""Who is calling: every request carries an API key as a Bearer token (RFC 6750 §2.1),
checked by admin/apikeys.py; each key has a token bucket (its rate limit); the scope
checks the routes make are here, so each reads as one line."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..admin import Admin, validate
from ..admin.apikeys import ApiKey, Scope
from .errors import ApiError

bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="An API key: `mailwright apikey create NAME --scope SCOPE`.")

# RFC 6750 §3: a request without valid credentials is answered with the challenge.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mailwright"'}


@dataclass
class RateLimiter:
    """A token bucket per key: `per_minute` requests in a burst, refilled continuously.
    Per process: one process serves the API (workers.py)."""
    per_minute: int
    clock: object = time.monotonic
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)   # tokens, at

    def take(self, key_id: int) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self.buckets.get(key_id, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0)
        if tokens < 1.0:
            self.buckets[key_id] = (tokens, now)
            return (1.0 - tokens) * 60.0 / self.per_minute
        self.buckets[key_id] = (tokens - 1.0, now)
        return 0.0


def admin_of(request: Request) -> Admin:
    return request.app.state.admin


async def _live_key(request: Request, credentials: HTTPAuthorizationCredentials | None
                    ) -> ApiKey:
    if credentials is None:
        raise ApiError(401, "an API key is required: Authorization: Bearer <key>",
                       headers=CHALLENGE)
    key = await admin_of(request).api_keys.authenticate(credentials.credentials)
    if key is None:
        raise ApiError(401, "the API key is not valid (unknown, revoked or mistyped)",
                       headers=CHALLENGE)
    return key


async def require_key(request: Request) -> ApiKey:
    """401 unless the request carries a live key: for errors found before the route's
    dependencies ran (FastAPI reads a JSON body first), which are only for callers
    with a key to hear."""
    return await _live_key(request, await bearer(request))


async def caller(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
                 ) -> ApiKey:
    """The key of the request (401 without a valid one; 429 over its rate limit)."""
    key = await _live_key(request, credentials)
    wait = request.app.state.limiter.take(key.id)
    if wait:
        raise ApiError(429, f"rate limit of {request.app.state.limiter.per_minute} requests "
                       "per minute exceeded", headers={"Retry-After": str(math.ceil(wait))})
    return key


# The key of the request, as a route parameter: `key: Caller`.
Caller = Annotated[ApiKey, Depends(caller)]


async def manager_key(key: Caller) -> ApiKey:
    """Operations that read or manage a domain's things: any key but a send-only one
    (403, whether the thing asked for exists or not)."""
    if key.scope is Scope.SEND:
        raise ApiError(403, f"key {key.name!r} may only send")
    return key


# A key that may manage (admin or domain-admin), as a route parameter: `key: Manager`.
Manager = Annotated[ApiKey, Depends(manager_key)]


async def admin_key(key: Caller) -> ApiKey:
    """Operations over every domain: admin keys only."""
    if not key.is_admin:
        raise ApiError(403, f"this needs an admin key; key {key.name!r} is {key.scope}")
    return key


def managed_domain(key: ApiKey, domain: str) -> str:
    """The canonical form of `domain` (422 if it is not a domain name); 403 unless the
    key manages it. Whether it exists is the operation's to say (404), and only to a
    key that may know."""
    canonical = validate.domain(domain)
    if not key.may_manage(canonical):
        raise ApiError(403, f"key {key.name!r} ({key.scope}) does not manage {canonical}")
    return canonical


def domain_filter(key: ApiKey, domain: str | None) -> str | None:
    """The domain a listing (events, statistics, suppressions, campaigns) is limited
    to: any (None: all) for admin keys; a domain-admin key's own, its only one when it
    names none."""
    if domain is not None:
        return managed_domain(key, domain)
    if key.is_admin:
        return None
    if len(key.domains) == 1:
        return key.domains[0]
    raise ApiError(422, f"key {key.name!r} covers several domains: give domain= one of "
                        f"{', '.join(key.domains)}")


def managed_address(key: ApiKey, address: str) -> str:
    """As managed_domain, for an address (or an alias's "@domain"): its domain decides."""
    domain = address.strip().rpartition("@")[2]
    if "@" not in address or not domain:
        raise ApiError(422, f"invalid address {address!r}: expected local-part@domain")
    managed_domain(key, domain)
    return address.strip()
