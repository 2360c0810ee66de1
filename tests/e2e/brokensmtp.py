"""Deliberately misconfigured SMTP servers on loopback for the diagnostics tests: each a
real aiosmtpd server (threads of this process, real sockets) with one planted flaw.

Our own server cannot be made an open relay (its config has no trusted networks, like
Postfix's mynetworks, by design), so the open relay is one of these. Every server
records what reaches DATA: the tests assert that nothing ever does.
"""

from __future__ import annotations

import datetime
import socket
import socketserver
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..conftest import free_port

LOCAL_DOMAIN = "broken.test"


@dataclass
class Handler:
    """Accepts recipients at LOCAL_DOMAIN only, unless `open_relay`; answers VRFY with
    the mailbox when `vrfy`; records every message that reaches the end of DATA."""
    open_relay: bool = False
    vrfy: bool = False
    messages: list = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not self.open_relay and not address.lower().endswith("@" + LOCAL_DOMAIN):
            return "554 5.7.1 Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_VRFY(self, server, session, envelope, address):
        if self.vrfy:
            return f"250 2.1.5 Postmaster <{address}@{LOCAL_DOMAIN}>"
        return "252 2.5.0 Cannot VRFY user"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 2.0.0 OK"


class ExpandingSMTP(SMTP):
    """EXPN answered with the list's members (aiosmtpd itself answers 502)."""

    async def smtp_EXPN(self, arg: str) -> None:
        await self.push(f"250-Postmaster <postmaster@{LOCAL_DOMAIN}>")
        await self.push(f"250 Alice <alice@{LOCAL_DOMAIN}>")


class _Controller(Controller):
    def __init__(self, handler, smtp_class, **kwargs):
        self.smtp_class = smtp_class
        super().__init__(handler, **kwargs)

    def factory(self):
        return self.smtp_class(self.handler, **self.SMTP_kwargs)


class BrokenServer:
    def __init__(self, *, handler: Handler | None = None, smtp_class=SMTP,
                 tls_context: ssl.SSLContext | None = None, auth_before_tls: bool = False,
                 hostname: str = f"mx.{LOCAL_DOMAIN}"):
        self.handler = handler or Handler()
        self.port = free_port()
        kwargs = {"ident": "broken ESMTP"}
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        if auth_before_tls:
            kwargs |= {"auth_require_tls": False,
                       "authenticator": lambda *a: AuthResult(success=False)}
        self.controller = _Controller(self.handler, smtp_class, hostname="127.0.0.1",
                                      port=self.port, server_hostname=hostname, **kwargs)

    def __enter__(self) -> BrokenServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


# --- certificates -----------------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def expired_self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` that expired ten days ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=100))
            .not_valid_after(now - datetime.timedelta(days=10))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return _write(directory, "expired", cert, key)


def ca_and_leaf(directory: Path, name: str, days_left: int = 30) -> tuple[Path, Path, Path]:
    """A test CA (its certificate for the client's cafile) and a leaf for `name` that
    expires in `days_left` days."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca = (x509.CertificateBuilder().subject_name(_name("checksmtp test CA"))
          .issuer_name(_name("checksmtp test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days_left))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, _ = _write(directory, "ca", ca, ca_key)
    cert_path, key_path = _write(directory, "leaf", leaf, key)
    return ca_path, cert_path, key_path


def server_context(cert: Path, key: Path, allow_tls1: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if allow_tls1:
        # The planted flaw: TLS 1.0 and 1.1 accepted (OpenSSL 3 needs level 0 for them).
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


# --- a server that greets slowly or not at all ------------------------------------------

class GreetingServer:
    """Greets after `delay` seconds with `greeting` (a tarpit, a greet pause, a 4xx
    refusal); then a minimal SMTP: EHLO 250, QUIT 221, anything else 502. A 4xx/5xx
    greeting ends the connection (RFC 5321 §3.1)."""

    def __init__(self, greeting: str = "220 mx.broken.test ESMTP", delay: float = 0.0,
                 first_only: bool = False, host: str = "127.0.0.1"):
        """`first_only`: only the first connection waits, as behind Postfix's
        postscreen, which lets a client that waited once straight in afterwards."""
        self.greeting, self.delay, self.first_only = greeting, delay, first_only
        self.port = free_port(host)
        self.connections = 0
        outer = self

        class Session(socketserver.StreamRequestHandler):
            def handle(self):
                outer.connections += 1
                delay = outer.delay if outer.connections == 1 or not outer.first_only else 0
                if outer.stopping.wait(delay):
                    return
                self.wfile.write(outer.greeting.encode() + b"\r\n")
                if not outer.greeting.startswith("220"):
                    return
                for _ in range(100):
                    line = self.rfile.readline(1024).strip().upper()
                    if not line or line == b"QUIT":
                        self.wfile.write(b"221 2.0.0 Bye\r\n")
                        return
                    if line.startswith(b"EHLO"):
                        self.wfile.write(b"250-mx.broken.test\r\n250 PIPELINING\r\n")
                    else:
                        self.wfile.write(b"502 5.5.1 Not here\r\n")

        class Server(socketserver.ThreadingTCPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            allow_reuse_address = True
            daemon_threads = True

        self.stopping = threading.Event()
        self.server = Server((host, self.port), Session)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GreetingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
