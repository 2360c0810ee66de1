"""POP3 over a socket: the generic session protocol with a Pop3Session inside."""

from __future__ import annotations

from ..net.connection import SessionProtocol, TLSInfo
from .session import Pop3Session, err


class Pop3Protocol(SessionProtocol):
    # Shutdown closes without a word: POP3 answers commands only, and a connection that
    # ends outside QUIT leaves the maildrop untouched (RFC 1939 §6: no UPDATE state), as
    # the autologout timer's close does (§3).
    SHUTTING_DOWN = b""
    INTERNAL_ERROR = err("[SYS/TEMP] Internal error, closing")

    def make_session(self, ip: str, port: int, tls: TLSInfo | None) -> Pop3Session:
        s = self.services
        return Pop3Session(ip, tls, s.config, s.store, s.logins, s.events, s.pop3)

    def refusal(self, reason: str) -> bytes:
        return err(f"[SYS/TEMP] {reason}")
