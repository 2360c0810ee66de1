"""The server side of authentication, one driver for SMTP, IMAP and POP3.

An `Authenticator` belongs to one connection. It runs a SASL exchange (RFC 4422)
from the AUTH / AUTHENTICATE command with its optional initial response (RFC 4954
§4, RFC 4959, RFC 5034 §4) through the client's base64 responses, cancellation
("*") and the server-final of SCRAM, and checks plain passwords (IMAP LOGIN, POP3
USER/PASS). The failed-login lockout is checked and fed here, and every failure
is delayed here. What it returns says what happened; each protocol only puts
that into its own words: a continuation is "334 base64" in SMTP and "+ base64"
in IMAP and POP3, an outcome is a reply, a tagged response or +OK/-ERR.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..events.log import EventLog
from ..events.types import Event
from . import sasl
from .logins import Logins


@dataclass(frozen=True)
class Continue:
    """Send `data` as a continuation and pass the client's next line to respond()."""
    data: bytes


@dataclass(frozen=True)
class Authenticated:
    account: str
    mechanism: str


@dataclass(frozen=True)
class Rejected:
    """The credentials were refused, after the failure delay; `malformed` when the
    client broke the mechanism's syntax rather than giving a wrong password."""
    malformed: bool = False


class Ended(enum.Enum):
    """Exchanges that end without checking any credentials."""
    LOCKED = "too many failed logins from this address"
    UNSUPPORTED = "mechanism not offered"
    INVALID_INITIAL = "initial response is not base64"
    INVALID_RESPONSE = "response is not base64"
    CANCELLED = "the client cancelled"


Result = Continue | Authenticated | Rejected | Ended


class _Exchange:
    def __init__(self, mechanism: sasl.Mechanism):
        self.mechanism = mechanism
        self.verified: str | None = None      # account, once the server-final is out


class Authenticator:
    def __init__(self, offer: sasl.Offer, source: sasl.CredentialSource,
                 logins: Logins, events: EventLog, client_ip: str, session_id: str,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.offer = offer
        self.verifier = sasl.Verifier(source, logins.cache)
        self.lockout = logins.lockout
        self.events = events
        self.client_ip = client_ip
        self.session_id = session_id
        self.sleep = sleep
        self.exchange: _Exchange | None = None

    @property
    def active(self) -> bool:
        """An exchange is under way: the client's next line is a response to it."""
        return self.exchange is not None

    def abort(self) -> None:
        """Drop the exchange (its response line was too long to read)."""
        self.exchange = None

    def locked(self) -> bool:
        left = self.lockout.locked_for(self.client_ip)
        if left > 0:
            self.events.emit(Event.AUTH_LOCKED, self.session_id, ip=self.client_ip,
                             protocol=self.offer.protocol, seconds=round(left))
        return left > 0

    async def begin(self, name: str, initial: str | None) -> Result:
        """AUTH / AUTHENTICATE: `initial` is the initial response as sent (base64,
        "=" for an empty one), None when absent."""
        if self.locked():
            return Ended.LOCKED
        mechanism = self.offer.create(name, self.verifier)
        if mechanism is None:
            return Ended.UNSUPPORTED
        data = None
        if initial is not None:
            data = sasl.decode_response(initial)
            if data is None:
                return Ended.INVALID_INITIAL
        self.exchange = _Exchange(mechanism)
        return await self._step(await mechanism.start(data))

    async def respond(self, line: bytes) -> Result:
        """The client's line during an exchange (without its CRLF)."""
        exchange = self.exchange
        assert exchange is not None
        if line == b"*":           # RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4: cancel
            self.exchange = None
            return Ended.CANCELLED
        if exchange.verified is not None:
            # RFC 4422 §5: the reply to additional data with success (SCRAM's
            # server-final) completes the authentication the mechanism verified.
            self.exchange = None
            return self._success(exchange.verified, exchange.mechanism.name)
        data = sasl.decode_response(line.decode("ascii", "replace"))
        if data is None:
            self.exchange = None
            return Ended.INVALID_RESPONSE
        return await self._step(await exchange.mechanism.respond(data))

    async def password(self, username: str, password: str, command: str) -> Result:
        """A login with a plain password outside SASL (IMAP LOGIN, POP3 USER/PASS);
        `command` names it in the log."""
        if self.locked():
            return Ended.LOCKED
        step = await self.verifier.check_password(username, password)
        if isinstance(step, sasl.Success):
            return self._success(step.account, command)
        return await self._failure(step, command)

    async def _step(self, step: sasl.Step) -> Result:
        exchange = self.exchange
        assert exchange is not None
        if isinstance(step, sasl.Challenge):
            return Continue(step.data)
        if isinstance(step, sasl.Success) and step.final is not None:
            # RFC 4422 §5 / RFC 4954 §4: server data sent with success goes out as a
            # continuation; the client answers it (empty) before the outcome.
            exchange.verified = step.account
            return Continue(step.final)
        self.exchange = None
        if isinstance(step, sasl.Success):
            return self._success(step.account, exchange.mechanism.name)
        return await self._failure(step, exchange.mechanism.name)

    def _success(self, account: str, mechanism: str) -> Authenticated:
        self.lockout.record_success(self.client_ip)
        return Authenticated(account, mechanism)

    async def _failure(self, step: sasl.Failure, mechanism: str) -> Rejected:
        delay = self.lockout.record_failure(self.client_ip)
        self.events.emit(Event.AUTH_FAIL, self.session_id, ip=self.client_ip,
                         protocol=self.offer.protocol, mechanism=mechanism,
                         username=step.username)
        await self.sleep(delay)
        return Rejected(step.malformed)
