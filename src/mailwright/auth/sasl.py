"""SASL server mechanisms (RFC 4422): PLAIN (RFC 4616), LOGIN, SCRAM-SHA-256 (RFC 7677),
and the one registry of them: which names exist, which protocol offers which, when.

Each mechanism is a small state machine: it is given the client's decoded
responses and answers with a challenge, a success or a failure. Running an
exchange (base64, cancellation, lockout) is auth/driver.py's; the continuation
line's syntax ("334 ", "+ ") belongs to SMTP/IMAP/POP3.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .cache import CredentialCache
from .passwords import (
    Credentials,
    ScramKeys,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)


class CredentialSource(Protocol):
    """The accounts' stored credentials (the store implements this)."""
    async def credentials(self, username: str) -> Credentials | None: ...

    async def rehash_password(self, account: str, old_hash: str, new_hash: str) -> bool:
        """Replace old_hash by new_hash if it is still the account's hash."""
        ...


@dataclass(frozen=True)
class Challenge:
    data: bytes


@dataclass(frozen=True)
class Success:
    account: str
    final: bytes | None = None     # server data to send before completing (SCRAM)


@dataclass(frozen=True)
class Failure:
    username: str = ""
    malformed: bool = False        # a protocol error rather than wrong credentials


Step = Challenge | Success | Failure


class Verifier:
    """The credentials as the mechanisms see them: the stored ones (SCRAM reads its
    keys), and the one check of a plain password (PLAIN, LOGIN, IMAP LOGIN, POP3
    PASS), with the process's credential cache in front of argon2."""

    def __init__(self, source: CredentialSource, cache: CredentialCache | None = None):
        self.source = source
        self.cache = cache

    async def credentials(self, username: str) -> Credentials | None:
        return await self.source.credentials(username)

    async def check_password(self, username: str, password: str) -> Step:
        creds = await self.source.credentials(username)
        # Unknown users are verified against a dummy hash: the same cost either way,
        # so timing does not tell which accounts exist.
        who, hashed = (creds.account, creds.password_hash) if creds else \
            (f"?{username.lower()}", dummy_hash())
        cache = self.cache
        ok = cache.lookup(who, hashed, password) if cache is not None else None
        if ok is None:
            ok = await asyncio.to_thread(verify_password, hashed, password)   # argon2: off the loop
            if cache is not None:
                cache.remember(who, hashed, password, ok)
            if ok and creds and needs_rehash(hashed):
                await self._rehash(creds, password)
        if ok and creds:
            return Success(creds.account)
        return Failure(username)

    async def _rehash(self, creds: Credentials, password: str) -> None:
        """The policy's argon2 parameters changed since this hash was made: the
        password is at hand now and only now, so store a hash made with the new ones."""
        new = await asyncio.to_thread(hash_password, password)
        if await self.source.rehash_password(creds.account, creds.password_hash, new) \
                and self.cache is not None:
            self.cache.remember(creds.account, new, password, True)


class Mechanism:
    name = ""

    def __init__(self, source: Verifier):
        self.source = source

    async def start(self, initial: bytes | None) -> Step:
        """initial is the SASL-IR initial response, None when absent."""
        raise NotImplementedError

    async def respond(self, data: bytes) -> Step:
        raise NotImplementedError


class Plain(Mechanism):
    name = "PLAIN"

    async def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return await self.respond(initial)

    async def respond(self, data: bytes) -> Step:
        # RFC 4616 §2: [authzid] NUL authcid NUL passwd, all UTF-8.
        parts = data.split(b"\x00")
        if len(parts) != 3:
            return Failure(malformed=True)
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return Failure(malformed=True)
        step = await self.source.check_password(authcid, password)
        # Acting as another user (authzid) is not offered: only itself may be named.
        if isinstance(step, Success) and authzid and authzid.lower() != authcid.lower():
            return Failure(authcid)
        return step


class Login(Mechanism):
    """The widespread non-standard LOGIN mechanism (draft-murchison-sasl-login)."""
    name = "LOGIN"

    def __init__(self, source: Verifier):
        super().__init__(source)
        self.username: str | None = None

    async def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"Username:")
        return await self.respond(initial)

    async def respond(self, data: bytes) -> Step:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return Failure(malformed=True)
        if self.username is None:
            self.username = text
            return Challenge(b"Password:")
        return await self.source.check_password(self.username, text)


class ScramSha256(Mechanism):
    """RFC 5802 / RFC 7677 server side, without channel binding.

    Our own rather than scramp's server: scramp refuses a GS2 authzid, which
    Cyrus SASL clients (mbsync, mutt) send as their own user name; acting as
    oneself is allowed here as in PLAIN. Keys are scramp's (passwords.scram_keys)."""
    name = "SCRAM-SHA-256"

    def __init__(self, source: Verifier):
        super().__init__(source)
        self.username = ""
        self.account: str | None = None
        self.keys: ScramKeys | None = None
        self.gs2_header = ""
        self.client_first_bare = ""
        self.server_first = ""
        self.nonce = ""

    async def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return await self.respond(initial)

    async def respond(self, data: bytes) -> Step:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return Failure(malformed=True)
        if not self.server_first:
            return await self._client_first(text)
        return self._client_final(text)

    async def _client_first(self, text: str) -> Step:
        # gs2-header = gs2-cbind-flag "," [ authzid ] ","  (RFC 5802 §7)
        parts = text.split(",", 2)
        if len(parts) != 3 or parts[0] not in ("n", "y") or \
                (parts[1] and not parts[1].startswith("a=")):
            return Failure(malformed=True)
        self.gs2_header = f"{parts[0]},{parts[1]},"
        self.client_first_bare = parts[2]
        attrs = _scram_attrs(parts[2])
        if attrs is None or "n" not in attrs or "r" not in attrs or not attrs["r"]:
            return Failure(malformed=True)
        self.username = _scram_name(attrs["n"])
        authzid = _scram_name(parts[1][2:]) if parts[1] else ""
        creds = await self.source.credentials(self.username)
        if creds is None or (authzid and authzid.lower() != self.username.lower()):
            # RFC 5802 §5.1: go on with made-up but stable values, so the
            # exchange fails only at the proof and does not reveal the user.
            salt = hmac.new(b"mailwright-scram", self.username.encode(),
                            hashlib.sha256).digest()[:16]
            self.keys = ScramKeys(salt, b"\x00" * 32, b"\x00" * 32, 4096)
        else:
            self.account = creds.account
            self.keys = creds.scram
        self.nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
        self.server_first = (f"r={self.nonce},s={base64.b64encode(self.keys.salt).decode()},"
                             f"i={self.keys.iterations}")
        return Challenge(self.server_first.encode())

    def _client_final(self, text: str) -> Step:
        without_proof, sep, proof_part = text.rpartition(",p=")
        attrs = _scram_attrs(without_proof) if sep else None
        if attrs is None or attrs.get("r") != self.nonce or \
                attrs.get("c") != base64.b64encode(self.gs2_header.encode()).decode():
            return Failure(self.username)
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except (binascii.Error, ValueError):
            return Failure(self.username)
        assert self.keys is not None
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = hmac.new(self.keys.stored_key, auth_message, hashlib.sha256).digest()
        if len(proof) != len(signature):
            return Failure(self.username)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.keys.stored_key) \
                or self.account is None:
            return Failure(self.username)
        server_signature = hmac.new(self.keys.server_key, auth_message, hashlib.sha256).digest()
        return Success(self.account, b"v=" + base64.b64encode(server_signature))


def _scram_attrs(text: str) -> dict[str, str] | None:
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) != 1:
            return None
        out[key] = value
    return out


def _scram_name(text: str) -> str:
    # RFC 5802 §5.1: "=2C" and "=3D" stand for "," and "=" in names.
    return text.replace("=2C", ",").replace("=3D", "=")


def decode_response(text: str) -> bytes | None:
    """A base64 SASL response or initial response (RFC 4954 §4, RFC 5034 §4);
    "=" is the empty initial response; None when it is not valid base64."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class Registered:
    factory: Callable[[Verifier], Mechanism]
    protocols: frozenset[str]          # the protocols that offer it


# Every mechanism we implement, by its SASL name (RFC 4422 §3.1), in the order they
# are announced. LOGIN is offered by SMTP alone: it exists for mail clients that
# know no other mechanism there, while IMAP (LOGIN, RFC 9051 §6.2.3) and POP3
# (USER/PASS, RFC 1939 §7) have a plaintext login command of their own.
REGISTRY: dict[str, Registered] = {
    "PLAIN": Registered(Plain, frozenset({"smtp", "imap", "pop3"})),
    "LOGIN": Registered(Login, frozenset({"smtp"})),
    "SCRAM-SHA-256": Registered(ScramSha256, frozenset({"smtp", "imap", "pop3"})),
}


@dataclass(frozen=True)
class Offer:
    """What one protocol offers and when. No authentication at all over a
    connection without TLS unless the administrator allows it (imap/pop3
    allow_plaintext_auth; never for SMTP): RFC 4954 §4, RFC 2595 §2.2 and
    RFC 9051 §6.2.3 (LOGINDISABLED) ask for that configuration."""
    protocol: str                      # smtp | imap | pop3
    allow_plaintext: bool = False

    def allowed(self, tls: bool) -> bool:
        return tls or self.allow_plaintext

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, entry in REGISTRY.items()
                     if self.protocol in entry.protocols)

    def mechanisms(self, tls: bool) -> tuple[str, ...]:
        """The names to announce (EHLO AUTH, CAPABILITY AUTH=, CAPA SASL)."""
        return self.names if self.allowed(tls) else ()

    def create(self, name: str, source: Verifier) -> Mechanism | None:
        """A fresh mechanism for one exchange; None when this protocol offers no such
        name (SASL names are case-insensitive in all three protocols)."""
        entry = REGISTRY.get(name.upper())
        if entry is None or self.protocol not in entry.protocols:
            return None
        return entry.factory(source)
