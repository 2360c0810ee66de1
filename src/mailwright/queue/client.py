"""One delivery attempt to one host (the SMTP client side, on aiosmtplib).

aiosmtplib speaks the protocol; this module decides what to send (ESMTP
parameters only where the peer announced them) and turns every reply, error
and timeout into a per-recipient outcome: delivered, deferred or bounced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from ..store.base import QueuedMessage, QueuedRecipient
from . import dane
from .downgrade import ConversionImpossible, is_8bit, to_7bit

DELIVERED, DEFERRED, BOUNCED = "delivered", "deferred", "bounced"


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


class Session:
    """One SMTP connection to one host, reused for several messages in a row."""

    def __init__(self, *, ip: str, port: int, host: str, helo: str, timeout: float,
                 source_address: str = "", transport: Transport = MX_TRANSPORT):
        self.ip, self.port, self.host, self.helo = ip, port, host, helo
        self.timeout = timeout
        self.source_address = source_address
        self.transport = transport
        self.remote = f"{host} [{ip}]"
        self.smtp: aiosmtplib.SMTP | None = None
        self.broken: Outcome | None = None     # why this session cannot carry more mail
        self.tls = ""

    async def open(self) -> Outcome | None:
        """Connect, EHLO, STARTTLS, AUTH. None when ready, else the outcome for every
        recipient that was meant to go this way."""
        transport = self.transport
        tls_context = _tls_context(transport.verify, transport.cafile)
        implicit = transport.tls == "implicit"
        try:
            # We connect the socket ourselves: to the address our resolver chose, from
            # our source address, while TLS (SNI, certificate check) uses the host name.
            sock = await _connect(self.ip, self.port, self.source_address, self.timeout)
        except (OSError, TimeoutError) as e:
            self.broken = Outcome(DEFERRED, f"451 4.4.1 {self.remote}: cannot connect: "
                                  f"{e.__class__.__name__}: {e}", self.remote)
            return self.broken
        smtp = self.smtp = aiosmtplib.SMTP(
            hostname=self.host, sock=sock, local_hostname=self.helo, timeout=self.timeout,
            start_tls=False, use_tls=implicit, tls_context=tls_context if implicit else None)
        try:
            await smtp.connect()
            await smtp.ehlo()
            if not implicit and transport.tls != "none":
                if smtp.supports_extension("starttls"):
                    await smtp.starttls(tls_context=tls_context, server_hostname=self.host)
                    await smtp.ehlo()
                elif transport.tls == "starttls" or transport.tlsa:
                    # Required TLS is never downgraded to plaintext: wait and retry.
                    raise _Defer(f"451 4.7.4 {self.remote} does not offer STARTTLS")
            if dane.authenticates(transport.tlsa):
                der = smtp.get_transport_info("ssl_object").getpeercert(binary_form=True)
                if not der or not dane.matches(der, transport.tlsa):
                    raise _Defer(f"451 4.7.5 {self.remote}: certificate does not match "
                                 "its DANE TLSA records")
            if transport.username:
                try:
                    await smtp.login(transport.username, transport.password)
                except aiosmtplib.SMTPAuthenticationError as e:
                    # Our credentials are wrong: the admin must fix them; keep the mail.
                    raise _Defer(f"451 4.7.0 authentication at {self.remote} failed: "
                                 f"{e.code} {e.message}") from None
        except _Defer as e:
            self.broken = Outcome(DEFERRED, str(e), self.remote)
        except aiosmtplib.SMTPResponseException as e:
            # A greeting or EHLO refusal: say what the server said, but a refusal to
            # talk to us is no verdict on the recipients: try again later.
            self.broken = Outcome(DEFERRED, f"{e.code} {e.message}", self.remote)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            self.broken = Outcome(DEFERRED, f"451 4.4.1 {self.remote}: "
                                  f"{e.__class__.__name__}: {e}", self.remote)
        if self.broken:
            await self.close()
        else:
            ssl_object = self.smtp.get_transport_info("ssl_object")
            if ssl_object is not None:
                self.tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
        return self.broken

    async def send(self, message: QueuedMessage, recipients: list[QueuedRecipient],
                   content: bytes) -> dict[int, Outcome]:
        """One mail transaction: an outcome for each recipient."""
        if self.broken:
            return {r.id: self.broken for r in recipients}
        try:
            outcomes = await _transaction(self.smtp, message, recipients, content, self.remote)
            return {rid: dataclasses.replace(o, tls=self.tls) for rid, o in outcomes.items()}
        except aiosmtplib.SMTPResponseException as e:
            outcome = Outcome(_state(e.code), f"{e.code} {e.message}", self.remote)
            try:
                await self.smtp.rset()          # ready for the next message
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self.broken = Outcome(DEFERRED, f"451 4.4.2 {self.remote}: connection lost",
                                      self.remote)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            outcome = Outcome(DEFERRED, f"451 4.4.2 {self.remote}: "
                              f"{e.__class__.__name__}: {e}", self.remote)
            self.broken = outcome
        return {r.id: outcome for r in recipients}

    async def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()


async def _connect(ip: str, port: int, source_address: str, timeout: float) -> socket.socket:
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


async def _transaction(smtp: aiosmtplib.SMTP, message: QueuedMessage,
                       recipients: list[QueuedRecipient], content: bytes,
                       remote: str) -> dict[int, Outcome]:
    dsn = smtp.supports_extension("dsn")
    if message.smtputf8 and not smtp.supports_extension("smtputf8"):
        # RFC 6531 §3.2: without SMTPUTF8 at the next hop the message cannot go on.
        bounce = Outcome(BOUNCED, "553 5.6.7 the receiving server does not support SMTPUTF8",
                         remote)
        return {r.id: bounce for r in recipients}
    if not smtp.supports_extension("8bitmime") and is_8bit(content):
        try:
            content = to_7bit(content)
        except ConversionImpossible as e:
            bounce = Outcome(BOUNCED, f"554 5.6.3 the receiving server does not support "
                                      f"8BITMIME and the message cannot be converted: {e}",
                             remote)
            return {r.id: bounce for r in recipients}
    options = []
    if smtp.supports_extension("size"):
        options.append(f"SIZE={len(content)}")
    if message.body == "8BITMIME" and smtp.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    if message.smtputf8:
        options.append("SMTPUTF8")
    if dsn and message.ret:
        options.append(f"RET={message.ret}")
    if dsn and message.envid:
        options.append(f"ENVID={_xtext(message.envid)}")
    encoding = "utf-8" if message.smtputf8 else "ascii"
    await smtp.mail(message.mail_from, options=options, encoding=encoding)
    outcomes: dict[int, Outcome] = {}
    accepted = []
    for r in recipients:
        rcpt_options = []
        if dsn and r.notify:
            rcpt_options.append(f"NOTIFY={r.notify}")
        if dsn and r.orcpt:
            addr_type, _, original = r.orcpt.partition(";")
            rcpt_options.append(f"ORCPT={addr_type};{_xtext(original)}")
        try:
            await smtp.rcpt(r.address, options=rcpt_options, encoding=encoding)
            accepted.append(r)
        except aiosmtplib.SMTPRecipientRefused as e:
            outcomes[r.id] = Outcome(_state(e.code), f"{e.code} {e.message}", remote)
    if not accepted:
        await smtp.rset()
        return outcomes
    if not content.endswith(b"\r\n"):
        # A BDAT-received message may end without CRLF; on the wire DATA needs one
        # before the terminating "." (RFC 5321 §4.1.1.4).
        content += b"\r\n"
    # RFC 5321 §4.5.3.2.6: wait 10 minutes for the reply to the final ".".
    reply = await smtp.data(content, timeout=max(smtp.timeout or 0, 600))
    for r in accepted:
        outcomes[r.id] = Outcome(_state(reply.code), f"{reply.code} {reply.message}", remote)
    return outcomes
