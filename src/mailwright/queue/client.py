"""Delivery attempts to one host: what to send and what the replies mean.

queue/smtpclient.py speaks the protocol; this module decides what to send (ESMTP
parameters only where the peer announced them, the TLS policy of the route) and
turns every reply, error and timeout into a per-recipient outcome: delivered,
deferred or bounced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import socket
import ssl
from dataclasses import dataclass

from ..store.queue import QueuedMessage, QueuedRecipient
from . import dane
from .downgrade import ConversionImpossible, is_8bit, shorten_lines, to_7bit
from .smtpclient import ProtocolError, Reply, SMTPConnection
from .states import BOUNCED, DEFERRED, DELIVERED


@dataclass(frozen=True)
class Outcome:
    state: str          # delivered | deferred | bounced
    reply: str          # "250 2.0.0 ok" or our own "451 4.4.1 connection failed: ..."
    remote: str = ""    # host [ip] that gave it
    tls: str = ""       # "TLSv1.3 TLS_AES_256_GCM_SHA384" when the session was encrypted


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


def _state(code: int) -> str:
    return DELIVERED if code < 400 else DEFERRED if code < 500 else BOUNCED


def _xtext(text: str) -> str:
    """RFC 3461 §4: encode "+", "=" and anything outside 33-126."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}"
                   for c in text)


class _Defer(Exception):
    pass


_LOST = (ProtocolError, OSError, TimeoutError, ssl.SSLError)


class Session:
    """One SMTP connection to one host, reused for several messages in a row."""

    def __init__(self, *, ip: str, port: int, host: str, helo: str, timeout: float,
                 source_address: str = "", transport: Transport = MX_TRANSPORT):
        self.ip, self.port, self.host, self.helo = ip, port, host, helo
        self.timeout = timeout
        self.source_address = source_address
        self.transport = transport
        self.remote = f"{host} [{ip}]"
        self.conn: SMTPConnection | None = None
        self.broken: Outcome | None = None     # why this session cannot carry more mail
        self.tls = ""

    def _lost(self, e: BaseException, status: str = "4.4.1") -> Outcome:
        return Outcome(DEFERRED, f"451 {status} {self.remote}: {e.__class__.__name__}: {e}",
                       self.remote)

    async def open(self) -> Outcome | None:
        """Connect, greeting, EHLO, STARTTLS, AUTH. None when ready, else the outcome
        for every recipient that was meant to go this way."""
        transport = self.transport
        tls_context = _tls_context(transport.verify, transport.cafile)
        implicit = transport.tls == "implicit"
        try:
            # We connect the socket ourselves: to the address our resolver chose, from
            # our source address, while TLS (SNI, certificate check) uses the host name.
            sock = await open_socket(self.ip, self.port, self.source_address, self.timeout)
            conn = self.conn = await SMTPConnection.open(
                sock, self.timeout, tls_context if implicit else None, self.host)
            greeting = await conn.read_reply()
            if greeting.code != 220:
                # A refusal to talk is no verdict on the recipients: try later.
                raise _Defer(f"{greeting.code} {greeting.text}")
            await self._hello()
            if not implicit and transport.tls != "none":
                if conn.supports("STARTTLS"):
                    reply = await conn.starttls(tls_context, self.host)
                    if reply.code != 220:
                        raise _Defer(f"451 4.7.4 {self.remote} refused STARTTLS: {reply}")
                    await self._hello()
                elif transport.tls == "starttls" or transport.tlsa:
                    # Required TLS is never downgraded to plaintext: wait and retry.
                    raise _Defer(f"451 4.7.4 {self.remote} does not offer STARTTLS")
            if dane.authenticates(transport.tlsa):
                der = conn.ssl_object.getpeercert(binary_form=True) if conn.ssl_object else None
                if not der or not dane.matches(der, transport.tlsa):
                    raise _Defer(f"451 4.7.5 {self.remote}: certificate does not match "
                                 "its DANE TLSA records")
            if transport.username:
                reply = await conn.auth(transport.username, transport.password)
                if reply.code != 235:
                    # Our credentials are wrong: the admin must fix them; keep the mail.
                    raise _Defer(f"451 4.7.0 authentication at {self.remote} failed: {reply}")
        except _Defer as e:
            self.broken = Outcome(DEFERRED, str(e), self.remote)
        except _LOST as e:
            self.broken = self._lost(e)
        if self.broken:
            await self.close()
        elif self.conn.ssl_object is not None:
            ssl_object = self.conn.ssl_object
            self.tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
        return self.broken

    async def _hello(self) -> None:
        reply = await self.conn.ehlo(self.helo)
        if reply.code != 250:
            raise _Defer(f"{reply.code} {reply.text}")

    async def send(self, message: QueuedMessage, recipients: list[QueuedRecipient],
                   content: bytes) -> dict[int, Outcome]:
        """One mail transaction: an outcome for each recipient."""
        if self.broken:
            return {r.id: self.broken for r in recipients}
        try:
            outcomes = await _transaction(self.conn, message, recipients, content,
                                          self.remote, self.timeout)
        except _LOST as e:
            self.broken = self._lost(e, "4.4.2")
            return {r.id: self.broken for r in recipients}
        return {rid: dataclasses.replace(o, tls=self.tls) for rid, o in outcomes.items()}

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            if self.broken:
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


async def _transaction(conn: SMTPConnection, message: QueuedMessage,
                       recipients: list[QueuedRecipient], content: bytes, remote: str,
                       timeout: float) -> dict[int, Outcome]:
    if message.smtputf8 and not conn.supports("SMTPUTF8"):
        # RFC 6531 §3.2: without SMTPUTF8 at the next hop the message cannot go on.
        bounce = Outcome(BOUNCED, "553 5.6.7 the receiving server does not support SMTPUTF8",
                         remote)
        return {r.id: bounce for r in recipients}
    # RFC 5322 §2.1.1 / RFC 5321 §4.5.3.1.6: no line over 998 octets goes out as it
    # is (sessions re-encode before signing; this catches DSNs and older entries).
    content = shorten_lines(content)
    if not conn.supports("8BITMIME") and is_8bit(content):
        try:
            content = to_7bit(content)
        except ConversionImpossible as e:
            bounce = Outcome(BOUNCED, f"554 5.6.3 the receiving server does not support "
                                      f"8BITMIME and the message cannot be converted: {e}",
                             remote)
            return {r.id: bounce for r in recipients}
    dsn = conn.supports("DSN")
    params = []
    if conn.supports("SIZE"):
        params.append(f"SIZE={len(content)}")
    if message.body == "8BITMIME" and conn.supports("8BITMIME"):
        params.append("BODY=8BITMIME")
    if message.smtputf8:
        params.append("SMTPUTF8")
    if dsn and message.ret:
        params.append(f"RET={message.ret}")
    if dsn and message.envid:
        params.append(f"ENVID={_xtext(message.envid)}")
    lines = [" ".join([f"MAIL FROM:<{message.mail_from}>", *params])]
    for r in recipients:
        rcpt = [f"RCPT TO:<{r.address}>"]
        if dsn and r.notify:
            rcpt.append(f"NOTIFY={r.notify}")
        if dsn and r.orcpt:
            addr_type, _, original = r.orcpt.partition(";")
            rcpt.append(f"ORCPT={addr_type};{_xtext(original)}")
        lines.append(" ".join(rcpt))
    lines.append("DATA")
    encoding = "utf-8" if message.smtputf8 else "ascii"
    if conn.supports("PIPELINING"):
        replies = await conn.pipeline(lines, encoding)      # RFC 2920 §3.1
    else:
        replies = []
        for line in lines:
            replies.append(await conn.command(line, encoding))
            if len(replies) == 1 and replies[0].code >= 300:
                break                                       # MAIL refused: stop here
    mail_reply, rcpt_replies = replies[0], replies[1:len(recipients) + 1]
    data_reply = replies[-1] if len(replies) == len(lines) else None
    if data_reply is not None and data_reply.code == 354 and \
            (mail_reply.code >= 300 or all(r.code >= 300 for r in rcpt_replies)):
        await conn.data(b"", timeout)       # RFC 2920 §3.1: end a DATA nobody can use
        data_reply = None
    if mail_reply.code >= 300:
        await conn.command("RSET")
        outcome = Outcome(_state(mail_reply.code), str(mail_reply), remote)
        return {r.id: outcome for r in recipients}
    outcomes: dict[int, Outcome] = {}
    accepted = []
    for r, reply in zip(recipients, rcpt_replies, strict=True):
        if reply.code < 300:
            accepted.append(r)
        else:
            outcomes[r.id] = Outcome(_state(reply.code), str(reply), remote)
    if not accepted:
        await conn.command("RSET")
        return outcomes
    if data_reply is None or data_reply.code != 354:
        await conn.command("RSET")
        refused = data_reply or Reply(451, "4.3.0 DATA was not accepted")
        for r in accepted:
            outcomes[r.id] = Outcome(_state(refused.code), str(refused), remote)
        return outcomes
    # RFC 5321 §4.5.3.2.6: wait 10 minutes for the reply to the final ".".
    final = await conn.data(content, max(timeout, 600))
    for r in accepted:
        outcomes[r.id] = Outcome(_state(final.code), str(final), remote)
    return outcomes
