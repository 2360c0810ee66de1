"""One outbound SMTP connection to one remote host (an MX, a smarthost, a callout
target): connected from our source address to the address our resolver chose,
greeted, EHLO, STARTTLS and the certificate checks the route's transport asks for
(none, opportunistic, required, verified, DANE), AUTH at a smarthost.

mx/smtpclient.py speaks the protocol; this decides how to reach the host and
says, as a 4xx reply text, why a connection cannot carry mail. It may carry
several mail transactions in a row (queue/transaction.py); once it fails, it
carries no more.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from dataclasses import dataclass

from . import dane
from .smtpclient import ProtocolError, SMTPConnection

# What ends a connection: the peer broke the protocol or went away, or time ran out.
LOST = (ProtocolError, OSError, TimeoutError, ssl.SSLError)


@dataclass(frozen=True)
class Transport:
    """How to talk to the next hop: MX delivery, or a smarthost (relayhost)."""
    tls: str = "opportunistic"     # opportunistic | starttls (required) | implicit | none
    username: str = ""             # AUTH when set (only ever over TLS)
    password: str = ""
    verify: bool = False           # check the certificate (a smarthost has a real one)
    cafile: str = ""               # CA bundle for verify ("": the system's)
    tlsa: tuple = ()               # DNSSEC-validated TLSA records (RFC 7672): TLS required


MX_TRANSPORT = Transport()


@functools.lru_cache(maxsize=8)
def _tls_context(verify: bool, cafile: str = "") -> ssl.SSLContext:
    """Built once: loading the CA store costs milliseconds, per connection it dominated."""
    return ssl.create_default_context(cafile=cafile or None) if verify \
        else _opportunistic_tls()


def _opportunistic_tls() -> ssl.SSLContext:
    # RFC 3207 §4 / RFC 7435: opportunistic TLS authenticates nothing; a
    # certificate problem must not stop delivery (policies like MTA-STS do that).
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Refused(Exception):
    """The host will not carry mail now: the 4xx reply text says why."""


class OutboundConnection:
    def __init__(self, *, ip: str, port: int, host: str, helo: str, timeout: float,
                 source_address: str = "", transport: Transport = MX_TRANSPORT):
        self.ip, self.port, self.host, self.helo = ip, port, host, helo
        self.timeout = timeout
        self.source_address = source_address
        self.transport = transport
        self.remote = f"{host} [{ip}]"
        self.smtp: SMTPConnection | None = None
        self.failure: str | None = None    # why this connection cannot carry (more) mail
        self.tls = ""                      # "TLSv1.3 TLS_AES_256_GCM_SHA384" once encrypted

    def lost(self, e: BaseException, status: str = "4.4.1") -> str:
        """Note that the connection ended with `e`; the 451 reply text for it."""
        self.failure = f"451 {status} {self.remote}: {e.__class__.__name__}: {e}"
        return self.failure

    async def open(self) -> str | None:
        """Connect, greeting, EHLO, STARTTLS, AUTH. None when ready, else the reply
        text for every recipient that was meant to go this way (always a deferral:
        the host, not the recipient, is the problem)."""
        try:
            await self._open()
        except _Refused as e:
            self.failure = str(e)
        except LOST as e:
            self.lost(e)
        if self.failure:
            await self.close()
        elif self.smtp.ssl_object is not None:
            ssl_object = self.smtp.ssl_object
            self.tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
        return self.failure

    async def _open(self) -> None:
        transport = self.transport
        tls_context = _tls_context(transport.verify, transport.cafile)
        implicit = transport.tls == "implicit"
        # We connect the socket ourselves: to the address our resolver chose, from
        # our source address, while TLS (SNI, certificate check) uses the host name.
        sock = await open_socket(self.ip, self.port, self.source_address, self.timeout)
        conn = self.smtp = await SMTPConnection.open(
            sock, self.timeout, tls_context if implicit else None, self.host)
        greeting = await conn.read_reply()
        if greeting.code != 220:
            # A refusal to talk is no verdict on the recipients: try later.
            raise _Refused(f"{greeting.code} {greeting.text}")
        await self._hello()
        if not implicit and transport.tls != "none":
            if conn.supports("STARTTLS"):
                reply = await conn.starttls(tls_context, self.host)
                if reply.code != 220:
                    raise _Refused(f"451 4.7.4 {self.remote} refused STARTTLS: {reply}")
                await self._hello()
            elif transport.tls == "starttls" or transport.tlsa:
                # Required TLS is never downgraded to plaintext: wait and retry.
                raise _Refused(f"451 4.7.4 {self.remote} does not offer STARTTLS")
        if dane.authenticates(transport.tlsa):
            der = conn.ssl_object.getpeercert(binary_form=True) if conn.ssl_object else None
            if not der or not dane.matches(der, transport.tlsa):
                raise _Refused(f"451 4.7.5 {self.remote}: certificate does not match "
                               "its DANE TLSA records")
        if transport.username:
            reply = await conn.auth(transport.username, transport.password)
            if reply.code != 235:
                # Our credentials are wrong: the admin must fix them; keep the mail.
                raise _Refused(f"451 4.7.0 authentication at {self.remote} failed: {reply}")

    async def _hello(self) -> None:
        reply = await self.smtp.ehlo(self.helo)
        if reply.code != 250:
            raise _Refused(f"{reply.code} {reply.text}")

    async def close(self) -> None:
        """QUIT when the connection is sound, else just drop it."""
        conn, self.smtp = self.smtp, None
        if conn is not None:
            if self.failure:
                conn.close()
            else:
                await conn.quit()


async def open_socket(ip: str, port: int, source_address: str, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if source_address:
            sock.bind((source_address, 0))
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (ip, port)),
                               timeout)
    except BaseException:
        sock.close()
        raise
    return sock
