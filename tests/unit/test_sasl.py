"""The SASL mechanism registry and the authentication driver shared by SMTP, IMAP and
POP3 (auth/sasl.py, auth/driver.py), without any protocol around them."""

from __future__ import annotations

import asyncio
import base64

import pytest
import scramp

from mailwright.auth import driver, sasl
from mailwright.auth.driver import Authenticator
from mailwright.auth.lockout import AuthLockout
from mailwright.auth.logins import Logins
from mailwright.auth.passwords import Credentials, hash_password, scram_keys
from mailwright.config import AuthSettings

ACCOUNT = "alice@example.test"
PASSWORD = "correct horse battery"
IP = "192.0.2.44"


class Source:
    """One account, as the store would describe it."""

    def __init__(self):
        self.creds = Credentials(ACCOUNT, hash_password(PASSWORD), scram_keys(PASSWORD))

    async def credentials(self, username: str) -> Credentials | None:
        return self.creds if username.lower() == ACCOUNT else None


class Events:
    def __init__(self):
        self.seen: list[tuple[str, dict]] = []

    def emit(self, event, session=None, message_id=None, **data) -> None:
        self.seen.append((str(event), data))


@pytest.fixture(scope="module")
def source():
    return Source()


class World:
    def __init__(self, source, protocol="smtp", allow_plaintext=False, max_failures=3):
        self.lockout = AuthLockout(AuthSettings(max_failures=max_failures, failure_delay=2.0))
        self.events = Events()
        self.slept: list[float] = []
        self.auth = Authenticator(sasl.Offer(protocol, allow_plaintext), source,
                                  Logins(self.lockout), self.events, IP, "S1", sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def begin(self, name: str, initial: str | None = None) -> driver.Result:
        return asyncio.run(self.auth.begin(name, initial))

    def respond(self, line: bytes | str) -> driver.Result:
        return asyncio.run(self.auth.respond(line.encode() if isinstance(line, str) else line))

    def failures(self) -> list[dict]:
        return [data for name, data in self.events.seen if name == "auth-fail"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- the registry ---------------------------------------------------------------------
def test_each_protocol_offers_its_mechanisms_in_one_order():
    assert sasl.Offer("smtp").names == ("PLAIN", "LOGIN", "SCRAM-SHA-256")
    # IMAP and POP3 have plaintext login commands of their own: no LOGIN mechanism.
    assert sasl.Offer("imap").names == ("PLAIN", "SCRAM-SHA-256")
    assert sasl.Offer("pop3").names == ("PLAIN", "SCRAM-SHA-256")


def test_nothing_offered_without_tls_unless_allowed():
    assert sasl.Offer("smtp").mechanisms(tls=False) == ()
    assert sasl.Offer("smtp").mechanisms(tls=True) == ("PLAIN", "LOGIN", "SCRAM-SHA-256")
    assert sasl.Offer("imap").allowed(tls=False) is False
    assert sasl.Offer("imap", allow_plaintext=True).mechanisms(tls=False) == \
        ("PLAIN", "SCRAM-SHA-256")


def test_create_is_case_insensitive_and_only_for_offered_names(source):
    offer = sasl.Offer("imap")
    assert isinstance(offer.create("scram-sha-256", source), sasl.ScramSha256)
    assert isinstance(offer.create("Plain", source), sasl.Plain)
    assert offer.create("LOGIN", source) is None             # not an IMAP mechanism
    assert offer.create("CRAM-MD5", source) is None
    assert isinstance(sasl.Offer("smtp").create("login", source), sasl.Login)
    # A fresh state machine for every exchange.
    assert offer.create("PLAIN", source) is not offer.create("PLAIN", source)


# --- the driver -------------------------------------------------------------------------
def test_plain_with_initial_response(source):
    w = World(source)
    got = w.begin("PLAIN", b64(f"\0{ACCOUNT}\0{PASSWORD}"))
    assert got == driver.Authenticated(ACCOUNT, "PLAIN")
    assert not w.auth.active and w.slept == []


def test_plain_without_initial_response_gets_an_empty_challenge(source):
    # RFC 4616 §2 / RFC 4422 §5: the server sends an empty challenge first.
    w = World(source)
    assert w.begin("PLAIN") == driver.Continue(b"")
    assert w.auth.active
    assert w.respond(b64(f"\0{ACCOUNT}\0{PASSWORD}")) == driver.Authenticated(ACCOUNT, "PLAIN")
    assert not w.auth.active


def test_equals_sign_is_an_empty_initial_response(source):
    # RFC 4954 §4 / RFC 4959 §3: "=" is a zero-length initial response, unlike none;
    # PLAIN cannot be empty, so it is malformed (and counted as a failure).
    w = World(source)
    assert w.begin("PLAIN", "=") == driver.Rejected(malformed=True)
    assert w.failures()[0]["mechanism"] == "PLAIN"


def test_login_mechanism_asks_username_then_password(source):
    w = World(source)
    assert w.begin("LOGIN") == driver.Continue(b"Username:")
    assert w.respond(b64(ACCOUNT)) == driver.Continue(b"Password:")
    assert w.respond(b64(PASSWORD)) == driver.Authenticated(ACCOUNT, "LOGIN")


def test_invalid_base64_ends_the_exchange_without_counting_a_failure(source):
    w = World(source)
    assert w.begin("PLAIN", "!!!") is driver.Ended.INVALID_INITIAL
    assert not w.auth.active
    assert w.begin("PLAIN") == driver.Continue(b"")
    assert w.respond("not base64!") is driver.Ended.INVALID_RESPONSE
    assert not w.auth.active
    assert w.failures() == [] and w.lockout.locked_for(IP) == 0


def test_star_cancels(source):
    # RFC 4422 §3.5, RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4: "*" aborts the exchange.
    w = World(source)
    assert w.begin("LOGIN") == driver.Continue(b"Username:")
    assert w.respond("*") is driver.Ended.CANCELLED
    assert not w.auth.active and w.failures() == []


def test_unsupported_mechanism(source):
    w = World(source, protocol="pop3")
    assert w.begin("LOGIN", b64(ACCOUNT)) is driver.Ended.UNSUPPORTED
    assert not w.auth.active


def test_wrong_password_is_delayed_counted_and_logged(source):
    w = World(source, protocol="imap")
    got = w.begin("PLAIN", b64(f"\0{ACCOUNT}\0wrong"))
    assert got == driver.Rejected(malformed=False)
    assert w.slept == [2.0]                        # the lockout's delay for a first failure
    assert w.failures() == [{"ip": IP, "protocol": "imap", "mechanism": "PLAIN",
                             "username": ACCOUNT}]


def test_lockout_is_checked_before_any_mechanism_or_password(source):
    w = World(source, protocol="pop3", max_failures=2)
    for _ in range(2):
        assert isinstance(asyncio.run(w.auth.password(ACCOUNT, "wrong", "USER")),
                          driver.Rejected)
    assert w.failures()[0]["mechanism"] == "USER"
    # Locked now: the right password, any mechanism, even an unknown one, is refused.
    assert asyncio.run(w.auth.password(ACCOUNT, PASSWORD, "USER")) is driver.Ended.LOCKED
    assert w.begin("PLAIN", b64(f"\0{ACCOUNT}\0{PASSWORD}")) is driver.Ended.LOCKED
    assert w.begin("CRAM-MD5") is driver.Ended.LOCKED
    locked = [data for name, data in w.events.seen if name == "auth-locked"]
    assert len(locked) == 3 and locked[0]["protocol"] == "pop3" and locked[0]["seconds"] > 0


def test_success_clears_earlier_failures(source):
    w = World(source, max_failures=2)
    assert isinstance(w.begin("PLAIN", b64(f"\0{ACCOUNT}\0wrong")), driver.Rejected)
    assert w.begin("PLAIN", b64(f"\0{ACCOUNT}\0{PASSWORD}")) == \
        driver.Authenticated(ACCOUNT, "PLAIN")
    assert isinstance(w.begin("PLAIN", b64(f"\0{ACCOUNT}\0wrong")), driver.Rejected)
    assert w.lockout.locked_for(IP) == 0           # one failure since the success, not two


def _scram_to_server_final(w: World) -> scramp.ScramClient:
    client = scramp.ScramClient(["SCRAM-SHA-256"], ACCOUNT, PASSWORD)
    first = w.begin("SCRAM-SHA-256", b64(client.get_client_first()))
    assert isinstance(first, driver.Continue)
    client.set_server_first(first.data.decode())
    final = w.respond(b64(client.get_client_final()))
    assert isinstance(final, driver.Continue)
    client.set_server_final(final.data.decode())       # raises unless the server proved itself
    return client


def test_scram_server_final_is_a_continuation_answered_before_success(source):
    # RFC 4422 §5 / RFC 4954 §4: additional data with success goes out as a challenge;
    # the client's (empty) reply to it completes the authentication.
    w = World(source)
    _scram_to_server_final(w)
    assert w.auth.active
    assert w.respond("") == driver.Authenticated(ACCOUNT, "SCRAM-SHA-256")
    assert not w.auth.active


def test_scram_cancel_after_server_final_logs_nobody_in(source):
    w = World(source)
    _scram_to_server_final(w)
    assert w.respond("*") is driver.Ended.CANCELLED
    assert not w.auth.active and w.failures() == []


def test_abort_drops_the_exchange(source):
    w = World(source)
    assert w.begin("PLAIN") == driver.Continue(b"")
    w.auth.abort()
    assert not w.auth.active
