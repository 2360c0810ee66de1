"""IMAP commands of the not-authenticated state (RFC 9051 §6.2): STARTTLS, LOGIN and
AUTHENTICATE with SASL-IR (RFC 4959). The exchange, the lockout shared with SMTP and
POP3 and the failure delay are auth/driver.py's; this puts its results in IMAP's
words. A mixin of ImapSession."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Coroutine
from typing import Any

from ..auth import driver, sasl
from ..events.types import Event
from ..net.connection import Action
from .base import Answer, State, tagged
from .parser import ParseError, Reader

# RFC 9051 §6.2.2, §7.1: the answers to exchanges that end before any credentials
# are checked (a cancelled or unreadable exchange is BAD, counted as an error).
_ENDED_NO = {
    driver.Ended.LOCKED: ("Too many failed logins; try again later", "UNAVAILABLE"),
    driver.Ended.UNSUPPORTED: ("Unsupported authentication mechanism", "CANNOT"),
}
_ENDED_BAD = {
    driver.Ended.INVALID_INITIAL: "Invalid base64 in initial response",
    driver.Ended.INVALID_RESPONSE: "Invalid base64 in authentication response",
    driver.Ended.CANCELLED: "Authentication cancelled",
}


class AuthCommands:
    @property
    def _auth_allowed(self) -> bool:
        return self.sasl.offer.allowed(self.tls is not None)

    def cmd_starttls(self, tag: str, r: Reader) -> Answer:
        r.end()
        if self.tls is not None or not self.tls_available:
            return self._bad(tag, "TLS is already active or not available"), Action.NONE
        return tagged(tag, "OK", "Begin TLS negotiation now"), Action.START_TLS

    def cmd_login(self, tag: str, r: Reader) -> Answer | Coroutine[Any, Any, Answer]:
        r.sp()
        user = r.astr()
        r.sp()
        password = r.astr()
        r.end()
        if not self._auth_allowed:
            return tagged(tag, "NO", "Plaintext login disallowed; use STARTTLS first",
                         "PRIVACYREQUIRED"), Action.NONE
        return self._authenticated(tag, self.sasl.password(user, password, "LOGIN"))

    def cmd_authenticate(self, tag: str, r: Reader) -> Answer | Coroutine[Any, Any, Answer]:
        r.sp()
        mechanism = r.atom()
        initial = None
        if r.accept(b" "):
            # RFC 4959 §7: initial-response = base64 / "="; anything else is a syntax error.
            initial = r.rest().decode("ascii", "replace")
            if sasl.decode_response(initial) is None:
                raise ParseError("invalid base64 in initial response")
        r.end()
        if not self._auth_allowed:
            return tagged(tag, "NO", "Authentication disallowed without TLS; use STARTTLS",
                         "PRIVACYREQUIRED"), Action.NONE
        self.sasl_tag = tag
        return self._authenticated(tag, self.sasl.begin(mechanism, initial))

    def _sasl_response(self, line: bytes) -> Coroutine[Any, Any, Answer]:
        return self._authenticated(self.sasl_tag, self.sasl.respond(line.rstrip(b"\r\n")))

    async def _authenticated(self, tag: str, pending: Awaitable[driver.Result]) -> Answer:
        return await self._auth_response(tag, await pending), Action.NONE

    async def _auth_response(self, tag: str, result: driver.Result) -> bytes:
        """The authentication driver's result in IMAP's words (RFC 9051 §6.2.2)."""
        if isinstance(result, driver.Continue):
            return b"+ " + base64.b64encode(result.data) + b"\r\n"
        if isinstance(result, driver.Authenticated):
            return await self._logged_in(tag, result.account)
        if isinstance(result, driver.Rejected):
            return tagged(tag, "NO", "Authentication failed", "AUTHENTICATIONFAILED")
        if result in _ENDED_NO:
            return tagged(tag, "NO", *_ENDED_NO[result])
        return self._bad(tag, _ENDED_BAD[result])

    async def _logged_in(self, tag: str, account: str) -> bytes:
        account_id = await self.store.account_id(account)
        if account_id is None:
            return tagged(tag, "NO", "Account not available", "UNAVAILABLE")
        self.account, self.account_id = account, account_id
        self.state = State.AUTHENTICATED
        self.events.emit(Event.AUTH_OK, self.id, ip=self.client_ip, protocol="imap",
                         account=account)
        return tagged(tag, "OK", f"Logged in as {account}",
                     "CAPABILITY " + self._capabilities())
