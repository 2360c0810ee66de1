"""SASL server mechanisms (RFC 4422): PLAIN (RFC 4616), LOGIN, SCRAM-SHA-256 (RFC 7677).

Each mechanism is a small state machine: it is given the client's decoded
responses and answers with a challenge, a success or a failure. Protocol
framing (base64, "334 ", "+ ", "*" to cancel) belongs to SMTP/IMAP/POP3.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

import scramp

from .passwords import DUMMY_HASH, ScramKeys, verify_password

MECHANISMS = ("PLAIN", "LOGIN", "SCRAM-SHA-256")


@dataclass(frozen=True)
class Credentials:
    """What the store knows about an account, for authentication."""
    account: str               # canonical address of the account
    password_hash: str
    scram: ScramKeys


class CredentialSource(Protocol):
    def credentials(self, username: str) -> Credentials | None: ...


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


async def check_password(source: CredentialSource, username: str, password: str) -> Step:
    creds = source.credentials(username)
    # Verify against a dummy hash for unknown users: the same cost either way,
    # so timing does not tell which accounts exist. argon2 runs off the loop.
    hashed = creds.password_hash if creds else DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, hashed, password)
    if ok and creds:
        return Success(creds.account)
    return Failure(username)


class Mechanism:
    name = ""

    def __init__(self, source: CredentialSource):
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
        step = await check_password(self.source, authcid, password)
        # Acting as another user (authzid) is not offered: only itself may be named.
        if isinstance(step, Success) and authzid and authzid.lower() != authcid.lower():
            return Failure(authcid)
        return step


class Login(Mechanism):
    """The widespread non-standard LOGIN mechanism (draft-murchison-sasl-login)."""
    name = "LOGIN"

    def __init__(self, source: CredentialSource):
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
        return await check_password(self.source, self.username, text)


class ScramSha256(Mechanism):
    name = "SCRAM-SHA-256"

    def __init__(self, source: CredentialSource):
        super().__init__(source)
        self.username = ""
        self.account: str | None = None
        self.server = scramp.ScramMechanism("SCRAM-SHA-256").make_server(self._auth_info)
        self.stage = 0

    def _auth_info(self, username: str):
        self.username = username
        creds = self.source.credentials(username)
        if creds is None:
            # RFC 5802 §5.1: for an unknown user continue with made-up but
            # stable values, so the exchange fails only at the proof.
            salt = hmac.new(b"mailwright-scram", username.encode(), hashlib.sha256).digest()[:16]
            return salt, b"\x00" * 32, b"\x00" * 32, 4096
        self.account = creds.account
        k = creds.scram
        return k.salt, k.stored_key, k.server_key, k.iterations

    async def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return await self.respond(initial)

    async def respond(self, data: bytes) -> Step:
        try:
            text = data.decode("utf-8")
            if self.stage == 0:
                self.stage = 1
                self.server.set_client_first(text)
                return Challenge(self.server.get_server_first().encode())
            self.server.set_client_final(text)
            final = self.server.get_server_final().encode()
        except scramp.ScramException:
            return Failure(self.username, malformed=self.stage == 0)
        except UnicodeDecodeError:
            return Failure(malformed=True)
        if self.account is None:
            return Failure(self.username)
        return Success(self.account, final)


def decode_response(text: str) -> bytes | None:
    """A base64 SASL response or initial response (RFC 4954 §4, RFC 5034 §4);
    "=" is the empty initial response; None when it is not valid base64."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def make_mechanism(name: str, source: CredentialSource) -> Mechanism | None:
    cls = {"PLAIN": Plain, "LOGIN": Login, "SCRAM-SHA-256": ScramSha256}.get(name.upper())
    return cls(source) if cls else None
