"""API keys (admin/apikeys.py) on a real store of each backend, and the API's rate
limiter."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.admin import Admin, Invalid, NotFound
from mailwright.admin.apikeys import Scope
from mailwright.api.auth import RateLimiter

from .stored import table_rows
from .test_admin import _config


@pytest.fixture
def example(tmp_path, make_store):
    """An admin over a store with the local domain example.test."""
    admin = Admin(make_store(), _config(tmp_path))
    asyncio.run(admin.domains.add("example.test"))
    return admin


def run(coro):
    return asyncio.run(coro)


def test_a_token_authenticates_its_key_until_revoked(example):
    made = run(example.api_keys.create("billing", "admin"))
    assert made.token.startswith(f"mw_{made.key.prefix}_")
    key = run(example.api_keys.authenticate(made.token))
    assert key is not None and key.id == made.key.id and key.scope is Scope.ADMIN
    assert run(example.api_keys.list())[0].last_used is not None   # first use recorded
    run(example.api_keys.revoke(made.key.id))
    assert run(example.api_keys.authenticate(made.token)) is None
    assert run(example.api_keys.list())[0].revoked is not None


def test_the_token_itself_is_not_stored(example):
    made = run(example.api_keys.create("ci", "admin"))
    rows = table_rows(example.ctx.store, "SELECT * FROM api_keys")
    assert not any(made.token in str(value) for row in rows for value in row)


@pytest.mark.parametrize("token", ["", "Bearer x", "mw_", "mw_0123456789ab_short",
                                   "mw_0123456789ab_" + "A" * 43])
def test_malformed_or_unknown_tokens_are_refused(example, token):
    run(example.api_keys.create("ci", "admin"))
    assert run(example.api_keys.authenticate(token)) is None


def test_a_token_with_a_changed_secret_is_refused(example):
    made = run(example.api_keys.create("ci", "admin"))
    last = made.token[-1]
    forged = made.token[:-1] + ("A" if last != "A" else "B")
    assert run(example.api_keys.authenticate(forged)) is None


def test_scopes(example):
    run(example.domains.add("other.test"))
    domain_admin = run(example.api_keys.create("d", "domain-admin", ["EXAMPLE.test"])).key
    sender = run(example.api_keys.create("s", "send", ["example.test"])).key
    root = run(example.api_keys.create("r", "admin")).key
    assert domain_admin.domains == ("example.test",)
    assert domain_admin.may_manage("example.test") and not domain_admin.may_manage("other.test")
    assert not sender.may_manage("example.test") and sender.may_send_from("example.test")
    assert sender.sender_domains == frozenset({"example.test"})
    assert root.may_manage("other.test") and root.sender_domains is None


@pytest.mark.parametrize("name, scope, domains, error", [
    ("", "admin", [], Invalid), ("x", "root", [], Invalid), ("x", "admin", ["example.test"],
                                                            Invalid),
    ("x", "send", [], Invalid), ("x", "domain-admin", ["nowhere.test"], NotFound),
    ("x", "send", ["not a domain"], Invalid)])
def test_bad_keys_are_refused_with_the_reason(example, name, scope, domains, error):
    with pytest.raises(error):
        run(example.api_keys.create(name, scope, domains))
    assert run(example.api_keys.list()) == []


def test_revoking_an_unknown_key(example):
    with pytest.raises(NotFound):
        run(example.api_keys.revoke(99))


def test_rate_limiter_allows_a_burst_then_refills():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    assert all(limiter.take(1) == 0 for _ in range(60))
    wait = limiter.take(1)
    assert wait == pytest.approx(1.0)              # one token per second at 60/min
    assert limiter.take(2) == 0                    # another key has its own bucket
    now[0] += 1.0
    assert limiter.take(1) == 0 and limiter.take(1) > 0
    assert RateLimiter(0).take(1) == 0             # 0: no limit
