"""SMTP over a socket: the generic session protocol with an SmtpSession inside."""

from __future__ import annotations

from ..delivery.assemble import pipeline_for
from ..net.connection import SessionProtocol, TLSInfo
from ..smtpreply import Reply
from .session import Connection, SmtpSession


class SmtpProtocol(SessionProtocol):
    SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later").render()
    INTERNAL_ERROR = Reply(421, "4.3.0", "Internal error, closing").render()

    def make_session(self, ip: str, port: int, tls: TLSInfo | None) -> SmtpSession:
        s = self.services
        role = self.listener.role
        pipeline = pipeline_for(role, s.parts())
        return SmtpSession(Connection(role, ip, port, tls), s.config, s.store, s.logins,
                           s.events, pipeline=pipeline)

    def refusal(self, reason: str) -> bytes:
        return Reply(421, "4.7.0", reason).render()
