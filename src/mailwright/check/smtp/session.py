"""One probe connection to the server under test: connected to the address chosen,
greeted, EHLO, and (when asked and offered) STARTTLS and EHLO again — timed, so the
greeting probe can tell a tarpit from a dead server.

Every probe opens its own connection (they run concurrently and a probe may end its
connection abruptly); the protocol is mx/smtpclient.py's, reaching the address
mx/connection.py's, as for the queue's deliveries.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

from ...mx.connection import LOST, open_socket
from ...mx.smtpclient import SMTPConnection
from ...smtpreply import Reply
from ..findings import Finding, Severity

# RFC 5321 §4.5.3.2.1: a client waits up to 5 minutes for the greeting; a server that
# greets later than this is pausing on purpose (a tarpit, Postfix's postscreen greet
# pause) or overloaded.
SLOW_GREETING = 5.0


@dataclass(frozen=True)
class Target:
    """What is probed and how."""
    host: str               # the name asked for (an MX name, or an address)
    ip: str                 # the address connected to
    port: int
    role: str               # mx (port 25) | submission (587, STARTTLS) | submissions (465)
    expect_name: str        # the name the certificate must carry
    helo: str               # the name we greet with
    timeout: float
    cafile: str = ""
    # Sessions use STARTTLS when offered; False once it is known to fail, so that the
    # probes that do not test TLS go on in plaintext, as a sender would (RFC 7435 §3).
    starttls: bool = True

    @property
    def subject(self) -> str:
        if self.host != self.ip:
            return f"{self.host} [{self.ip}]:{self.port}"
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def implicit_tls(self) -> bool:
        return self.role == "submissions"

    def finding(self, id: str, severity: Severity, seen: str, why: str = "",
                fix: str = "") -> Finding:
        return Finding(id, severity, self.subject, seen, why, fix)


class NoGreeting(Exception):
    """Connected, but the server said nothing within the timeout."""


class Refused(Exception):
    """The server would not start a session (no 220 greeting, EHLO/HELO refused)."""

    def __init__(self, what: str, reply: Reply):
        super().__init__(f"{what}: {reply}")
        self.reply = reply


@dataclass
class Session:
    conn: SMTPConnection
    greeting: Reply
    connect_time: float                 # seconds to the TCP (and implicit TLS) connection
    greeting_time: float                # seconds from then to the greeting
    ehlo: Reply | None = None
    plain_extensions: dict[str, str] = field(default_factory=dict)   # before STARTTLS
    starttls: Reply | None = None       # the reply to STARTTLS, when it was sent

    @property
    def tls(self) -> ssl.SSLObject | None:
        return self.conn.ssl_object

    async def drop(self) -> None:
        """End without QUIT: a probe that leaves a transaction open (the smuggling
        probe mid-DATA) must not let anything be read as its end (RFC 5321 §4.1.1.4:
        data ends only at CRLF.CRLF; a lost connection aborts the transaction)."""
        self.conn.close()

    async def close(self) -> None:
        await self.conn.quit()


async def connect(target: Target, tls_context: ssl.SSLContext | None = None) -> Session:
    """TCP (TLS from the first byte for port 465, with `tls_context`) and the greeting.
    Raises LOST errors and Refused for a greeting other than 220."""
    started = time.monotonic()
    sock = await open_socket(target.ip, target.port, "", target.timeout)
    implicit = tls_context if target.implicit_tls else None
    try:
        conn = await SMTPConnection.open(sock, target.timeout, implicit,
                                         target.expect_name)
    except BaseException:
        sock.close()
        raise
    connected = time.monotonic()
    try:
        greeting = await conn.read_reply()
    except TimeoutError:
        conn.close()
        raise NoGreeting(f"no greeting within {target.timeout:g} s") from None
    except BaseException:
        conn.close()
        raise
    session = Session(conn, greeting, connected - started, time.monotonic() - connected)
    if greeting.code != 220:
        conn.close()
        raise Refused("greeting", greeting)
    return session


async def hello(session: Session, target: Target) -> Reply:
    reply = await session.conn.ehlo(target.helo)
    if reply.code != 250:
        raise Refused("EHLO/HELO", reply)
    session.ehlo = reply
    return reply


async def open_session(target: Target, *, tls_context: ssl.SSLContext | None = None
                       ) -> Session:
    """A session ready for commands: greeted, EHLO, and encrypted when the server
    offers STARTTLS and target.starttls (RFC 3207 §4.2: EHLO again after the
    handshake)."""
    context = tls_context or unverified_context()
    session = await connect(target, context)
    try:
        await hello(session, target)
        session.plain_extensions = dict(session.conn.extensions)
        if target.starttls and not target.implicit_tls and session.conn.supports("STARTTLS"):
            session.starttls = await session.conn.starttls(context, target.expect_name)
            if session.starttls.code == 220:
                await hello(session, target)
    except BaseException:
        session.conn.close()
        raise
    return session


def unverified_context() -> ssl.SSLContext:
    """For the probes that look at what the server says, not at its certificate
    (that is certificate.py's, with a verifying context): accept any certificate, as
    opportunistic SMTP TLS does (RFC 7435)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_error(e: BaseException) -> str:
    if isinstance(e, Refused):
        return str(e)
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    return f"{e.__class__.__name__}: {e}".rstrip(": ")


__all__ = ["LOST", "NoGreeting", "Refused", "Session", "Target", "connect", "describe_error",
           "hello", "open_session", "unverified_context"]
