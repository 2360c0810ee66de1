"""The credential cache and the one plain-password check (auth/cache.py, sasl.Verifier):
against a real store of each backend; argon2 calls are counted at the library's boundary."""

import asyncio
import base64

import argon2
import pytest
import scramp

from mailwright.address import parse_mailbox
from mailwright.auth import passwords, sasl
from mailwright.auth.cache import CredentialCache
from mailwright.auth.driver import Authenticated, Authenticator, Continue
from mailwright.auth.lockout import AuthLockout
from mailwright.auth.logins import Logins
from mailwright.config import AuthSettings

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(clock):
    return CredentialCache(size=3, ttl=60, negative_ttl=5, clock=clock)


@pytest.fixture
def argon2_calls(monkeypatch):
    """How often argon2 itself ran (the library, not our code, is wrapped)."""
    calls = []
    verify = argon2.PasswordHasher.verify

    def counting(self, hashed, password):
        calls.append(hashed)
        return verify(self, hashed, password)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    return calls


@pytest.fixture
def store(make_store):
    """A store of each backend (conftest make_store closes it)."""
    s = make_store()
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_account(parse_mailbox("alice@example.test"), PASSWORD))
    return s


# --- the cache alone -------------------------------------------------------------

def test_remembers_a_verified_password_for_its_ttl(cache, clock):
    assert cache.lookup("alice", "$h1", PASSWORD) is None
    cache.remember("alice", "$h1", PASSWORD, True)
    assert cache.lookup("alice", "$h1", PASSWORD) is True
    assert cache.lookup("alice", "$h1", "another") is None       # not known: verify it
    clock.now += 60
    assert cache.lookup("alice", "$h1", PASSWORD) is None


def test_a_wrong_password_is_remembered_for_the_negative_ttl(cache, clock):
    cache.remember("alice", "$h1", "wrong", False)
    assert cache.lookup("alice", "$h1", "wrong") is False
    clock.now += 5
    assert cache.lookup("alice", "$h1", "wrong") is None


def test_an_entry_is_bound_to_the_stored_hash(cache):
    cache.remember("alice", "$h1", PASSWORD, True)
    assert cache.lookup("alice", "$h2", PASSWORD) is None       # password changed
    assert cache.lookup("bob", "$h1", PASSWORD) is None


def test_size_is_bounded_least_recently_used_first(cache):
    for user in ("a", "b", "c"):
        cache.remember(user, "$h", PASSWORD, True)
    assert cache.lookup("a", "$h", PASSWORD) is True             # a is now the newest
    cache.remember("d", "$h", PASSWORD, True)
    assert len(cache) == 3
    assert cache.lookup("b", "$h", PASSWORD) is None             # the oldest went
    assert cache.lookup("a", "$h", PASSWORD) is True


def test_the_password_itself_is_not_kept(cache):
    cache.remember("alice", "$h1", PASSWORD, True)
    kept = b"".join(e.digest for e in cache._entries.values())
    assert PASSWORD.encode() not in kept and len(kept) == 32
    other = CredentialCache(size=3, ttl=60, negative_ttl=5)
    other.remember("alice", "$h1", PASSWORD, True)                # another process's key
    assert other._entries[("alice", "$h1")].digest != kept


def test_size_zero_or_ttl_zero_keeps_nothing(clock):
    off = CredentialCache(size=0, ttl=60, negative_ttl=5, clock=clock)
    off.remember("alice", "$h1", PASSWORD, True)
    no_negative = CredentialCache(size=3, ttl=60, negative_ttl=0, clock=clock)
    no_negative.remember("alice", "$h1", "wrong", False)
    assert len(off) == 0 and len(no_negative) == 0


# --- the check, with a real store ---------------------------------------------------

def check(verifier: sasl.Verifier, username: str, password: str) -> sasl.Step:
    return asyncio.run(verifier.check_password(username, password))


def test_second_login_does_not_run_argon2(store, cache, argon2_calls):
    v = sasl.Verifier(store, cache)
    assert check(v, "alice@example.test", PASSWORD) == sasl.Success("alice@example.test")
    assert check(v, "ALICE@example.test", PASSWORD) == sasl.Success("alice@example.test")
    assert len(argon2_calls) == 1
    assert isinstance(check(v, "alice@example.test", "wrong"), sasl.Failure)
    assert isinstance(check(v, "alice@example.test", "wrong"), sasl.Failure)
    assert len(argon2_calls) == 2          # the wrong password was verified once


def test_without_a_cache_every_login_runs_argon2(store, argon2_calls):
    v = sasl.Verifier(store)
    for _ in range(2):
        assert check(v, "alice@example.test", PASSWORD) == sasl.Success("alice@example.test")
    assert len(argon2_calls) == 2


def test_a_password_change_invalidates_at_once(store, cache):
    v = sasl.Verifier(store, cache)
    alice = parse_mailbox("alice@example.test")
    assert isinstance(check(v, str(alice), PASSWORD), sasl.Success)
    asyncio.run(store.set_password(alice, "new password"))      # e.g. another process
    assert isinstance(check(v, str(alice), PASSWORD), sasl.Failure)
    assert isinstance(check(v, str(alice), "new password"), sasl.Success)


def test_removing_the_account_invalidates_at_once(store, cache):
    v = sasl.Verifier(store, cache)
    alice = parse_mailbox("alice@example.test")
    assert isinstance(check(v, str(alice), PASSWORD), sasl.Success)
    asyncio.run(store.remove_account(alice))
    assert isinstance(check(v, str(alice), PASSWORD), sasl.Failure)


def test_unknown_users_cost_an_argon2_verify_too(store, cache, argon2_calls):
    v = sasl.Verifier(store, cache)
    assert isinstance(check(v, "nobody@example.test", PASSWORD), sasl.Failure)
    assert argon2_calls == [passwords.dummy_hash()]


# --- argon2 parameters: a policy, recorded in each hash, rehashed at login ----------

@pytest.fixture
def policy():
    yield passwords.use
    passwords.use(passwords.Argon2Params())


def _params(phc: str) -> str:
    return phc.split("$")[3]              # "m=…,t=…,p=…"


def test_the_default_policy_is_owasp_minimum_argon2id():
    hashed = passwords.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$") and _params(hashed) == "m=19456,t=2,p=1"


def test_login_rehashes_when_the_policy_changed(store, cache, policy):
    alice = "alice@example.test"
    before = asyncio.run(store.credentials(alice))
    assert _params(before.password_hash) == "m=19456,t=2,p=1"
    policy(passwords.Argon2Params(time_cost=3, memory_kib=8192, parallelism=2))
    v = sasl.Verifier(store, cache)
    assert isinstance(check(v, alice, PASSWORD), sasl.Success)
    after = asyncio.run(store.credentials(alice))
    assert _params(after.password_hash) == "m=8192,t=3,p=2"
    assert after.scram == before.scram                    # SCRAM keys are not touched
    assert isinstance(check(v, alice, PASSWORD), sasl.Success)
    assert isinstance(check(sasl.Verifier(store), alice, PASSWORD), sasl.Success)


def test_a_rehash_never_undoes_a_concurrent_password_change(store):
    alice = parse_mailbox("alice@example.test")
    old = asyncio.run(store.credentials(str(alice))).password_hash
    asyncio.run(store.set_password(alice, "changed meanwhile"))
    assert not asyncio.run(store.rehash_password(str(alice), old, "$argon2id$x"))
    assert isinstance(check(sasl.Verifier(store), str(alice), "changed meanwhile"),
                      sasl.Success)


def test_scram_logins_never_run_argon2(store, cache, argon2_calls):
    # SCRAM (RFC 5802) proves the password with the stored keys: no argon2 at all.
    auth = Authenticator(sasl.Offer("imap"), store, Logins(AuthLockout(AuthSettings()), cache),
                         _NoEvents(), "192.0.2.1", "S1")
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice@example.test", PASSWORD)

    async def exchange():
        first = await auth.begin("SCRAM-SHA-256", _b64(client.get_client_first()))
        assert isinstance(first, Continue)
        client.set_server_first(first.data.decode())
        final = await auth.respond(_b64(client.get_client_final()).encode())
        client.set_server_final(final.data.decode())
        return await auth.respond(b"")
    assert asyncio.run(exchange()) == Authenticated("alice@example.test", "SCRAM-SHA-256")
    assert argon2_calls == []


class _NoEvents:
    def emit(self, *args, **kwargs) -> None:
        pass


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
