"""IMAP commands of the not-authenticated state (RFC 9051 §6.2): STARTTLS, LOGIN and
AUTHENTICATE with SASL-IR (RFC 4959), sharing the failed-login lockout with SMTP
and POP3. A mixin of ImapSession."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from ..auth import sasl
from ..events.types import Event
from ..net.connection import Action
from .base import Outcome, State, tagged
from .parser import ParseError, Reader

MECHANISMS = ("PLAIN", "SCRAM-SHA-256")


class AuthCommands:
    @property
    def _auth_allowed(self) -> bool:
        return self.tls is not None or self.config.imap.allow_plaintext_auth

    def cmd_starttls(self, tag: str, r: Reader) -> Outcome:
        r.end()
        if self.tls is not None or not self.tls_available:
            return self._bad(tag, "TLS is already active or not available"), Action.NONE
        return tagged(tag, "OK", "Begin TLS negotiation now"), Action.START_TLS

    def _locked(self, tag: str) -> Outcome | None:
        if self.lockout.locked_for(self.client_ip) > 0:
            return tagged(tag, "NO", "Too many failed logins; try again later",
                         "UNAVAILABLE"), Action.NONE
        return None

    def cmd_login(self, tag: str, r: Reader) -> Outcome | Coroutine[Any, Any, Outcome]:
        r.sp()
        user = r.astr()
        r.sp()
        password = r.astr()
        r.end()
        if not self._auth_allowed:
            return tagged(tag, "NO", "Plaintext login disallowed; use STARTTLS first",
                         "PRIVACYREQUIRED"), Action.NONE
        if locked := self._locked(tag):
            return locked
        return self._login(tag, user, password)

    async def _login(self, tag: str, user: str, password: str) -> Outcome:
        step = await sasl.check_password(self.store, user, password)
        return await self._finish_auth(tag, step, "LOGIN"), Action.NONE

    def cmd_authenticate(self, tag: str, r: Reader) -> Outcome | Coroutine[Any, Any, Outcome]:
        r.sp()
        mechanism = r.atom().upper()
        initial = None
        if r.accept(b" "):
            text = r.rest().decode("ascii", "replace")
            initial = b"" if text == "=" else sasl.decode_response(text)
            if initial is None:
                raise ParseError("invalid base64 in initial response")
        r.end()
        if not self._auth_allowed:
            return tagged(tag, "NO", "Authentication disallowed without TLS; use STARTTLS",
                         "PRIVACYREQUIRED"), Action.NONE
        if locked := self._locked(tag):
            return locked
        mech = sasl.make_mechanism(mechanism, self.store) if mechanism in MECHANISMS else None
        if mech is None:
            return tagged(tag, "NO", "Unsupported authentication mechanism",
                         "CANNOT"), Action.NONE
        self.sasl, self.sasl_tag = sasl.Exchange(mech), tag
        return self._sasl_start(self.sasl, initial)

    async def _sasl_start(self, exchange: sasl.Exchange, initial: bytes | None) -> Outcome:
        return await self._sasl_step(await exchange.start(initial)), Action.NONE

    def _sasl_response(self, line: bytes) -> Outcome | Coroutine[Any, Any, Outcome]:
        tag = self.sasl_tag
        text = line.rstrip(b"\r\n")
        if text == b"*":                                  # RFC 9051 §6.2.2: cancelled
            self.sasl = None
            return self._bad(tag, "Authentication cancelled"), Action.NONE
        if self.sasl.verified is not None:                # reply to the server-final
            return self._finish_success(tag, self.sasl.verified), Action.NONE
        data = sasl.decode_response(text.decode("ascii", "replace"))
        if data is None:
            self.sasl = None
            return self._bad(tag, "Invalid base64 in authentication response"), Action.NONE
        return self._sasl_continue(data)

    async def _sasl_continue(self, data: bytes) -> Outcome:
        assert self.sasl is not None
        return await self._sasl_step(await self.sasl.respond(data)), Action.NONE

    async def _sasl_step(self, step: bytes | sasl.Step) -> bytes:
        if isinstance(step, bytes):                       # a continuation
            return step
        mech = self.sasl.mechanism.name if self.sasl else ""
        self.sasl = None
        return await self._finish_auth(self.sasl_tag, step, mech)

    async def _finish_auth(self, tag: str, step: sasl.Step, mechanism: str) -> bytes:
        if isinstance(step, sasl.Success):
            return self._finish_success(tag, step.account)
        delay = self.lockout.record_failure(self.client_ip)
        self.events.emit(Event.AUTH_FAIL, self.id, ip=self.client_ip, protocol="imap",
                         mechanism=mechanism, username=getattr(step, "username", ""))
        await asyncio.sleep(delay)
        return tagged(tag, "NO", "Authentication failed", "AUTHENTICATIONFAILED")

    def _finish_success(self, tag: str, account: str) -> bytes:
        self.sasl = None
        account_id = self.store.account_id(account)
        if account_id is None:
            return tagged(tag, "NO", "Account not available", "UNAVAILABLE")
        self.lockout.record_success(self.client_ip)
        self.account, self.account_id = account, account_id
        self.state = State.AUTHENTICATED
        self.events.emit(Event.AUTH_OK, self.id, ip=self.client_ip, protocol="imap",
                         account=account)
        return tagged(tag, "OK", f"Logged in as {account}",
                     "CAPABILITY " + self._capabilities())
