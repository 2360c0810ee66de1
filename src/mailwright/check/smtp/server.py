"""server_findings: every probe of one SMTP server, as findings.

One main session (greeting, EHLO, STARTTLS, EHLO again) gives what a sender sees;
the probes that need a connection of their own (one per TLS version, the verifying
handshake, relay, enumeration, smuggling) run concurrently beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
from collections.abc import Awaitable

from ...dns import DNSError, Resolver
from ..findings import Finding, Severity
from . import auth, certificate, enumeration, extensions, greeting, relay, smuggling, tls, tlsa
from .session import (
    LOST,
    NoGreeting,
    Refused,
    Session,
    Target,
    connect,
    hello,
    unverified_context,
)

ROLES = ("mx", "submission", "submissions")
PORT_ROLES = {465: "submissions", 587: "submission"}


async def server_findings(host: str, port: int, *, resolver: Resolver,
                          categories: frozenset[str], timeout: float,
                          expect_name: str | None = None, cafile: str = "",
                          role: str = "", helo: str = "", rcpt: str = "") -> list[Finding]:
    """Probe host:port. `expect_name`: the name its certificate must carry (default:
    host); `cafile`: extra trust anchors; `categories`: which of smtp, tls, auth to
    report; `role`: mx | submission | submissions (default from the port: 465
    implicit TLS, 587 submission, any other an MX); `helo`: our EHLO name (default:
    this machine's name); `rcpt`: an address the server accepts, for the smuggling
    probe (which is skipped without one). A server that cannot be reached is reported
    whatever the categories."""
    role = role or PORT_ROLES.get(port, "mx")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    addresses, problem = await _addresses(host, resolver)
    if problem:
        return [Finding("smtp.connect", Severity.FAIL, f"{host}:{port}", problem,
                        "RFC 5321 §5.1: senders need an address for the host",
                        "publish an A or AAAA record for the host")]
    unreachable: list[Finding] = []
    for ip in addresses:
        target = Target(host=host, ip=ip, port=port, role=role,
                        expect_name=(expect_name or host).rstrip("."),
                        helo=helo or socket.gethostname(), timeout=timeout, cafile=cafile)
        try:
            session, handshake_error = await _main_session(target)
            break
        except (*LOST, NoGreeting, Refused) as e:
            if _unreachable(e) and ip != addresses[-1]:
                # RFC 5321 §5.1: senders try the host's next address; so do we.
                unreachable.append(_degrade(greeting.connect_failed(target, e)[0]))
                continue
            if target.implicit_tls and isinstance(e, ssl.SSLError):
                return [*unreachable, tls.implicit_failed(target, e)]
            return [*unreachable, *greeting.connect_failed(target, e)]
    try:
        found = await _probe(target, session, handshake_error, resolver, categories, rcpt)
    finally:
        await session.close()
    return unreachable + [f for f in found if f.category in categories]


def _unreachable(error: BaseException) -> bool:
    """No TCP connection at all (refused, unreachable, timed out): not an answer."""
    return isinstance(error, TimeoutError | OSError) and not isinstance(error, ssl.SSLError)


def _degrade(finding: Finding) -> Finding:
    """One address of several unreachable: mail is delayed, not lost."""
    return dataclasses.replace(finding, severity=Severity.WARN,
                               seen=finding.seen + "; the next address was probed")


async def _addresses(host: str, resolver: Resolver) -> tuple[list[str], str]:
    """The addresses to try, in order (A before AAAA), or why there are none."""
    try:
        return [str(ipaddress.ip_address(host))], ""
    except ValueError:
        pass
    try:
        addresses = await resolver.addresses(host)
    except DNSError as e:
        return [], f"{host} does not resolve: {e}"
    if not addresses:
        return [], f"{host} has no A or AAAA record"
    return addresses, ""


async def _main_session(target: Target) -> tuple[Session, BaseException | None]:
    """What a sender gets: encrypted when STARTTLS works; when its handshake fails, a
    second, plaintext session (as an opportunistic sender falls back, RFC 7435 §3)."""
    context = unverified_context()
    session = await connect(target, context)
    try:
        await hello(session, target)
        session.plain_extensions = dict(session.conn.extensions)
        if target.implicit_tls or not session.conn.supports("STARTTLS"):
            return session, None
        try:
            session.starttls = await session.conn.starttls(context, target.expect_name)
        except LOST as e:          # the command's answer or the handshake failed
            handshake_error = e
        else:
            if session.starttls.code == 220:
                await hello(session, target)
            return session, None
    except BaseException:
        session.conn.close()
        raise
    session.conn.close()
    plain = await connect(target, None)
    await hello(plain, target)
    plain.plain_extensions = dict(plain.conn.extensions)
    return plain, handshake_error


async def _probe(target: Target, session: Session, handshake_error: BaseException | None,
                 resolver: Resolver, categories: frozenset[str], rcpt: str) -> list[Finding]:
    """The findings in report order; the probes with connections of their own (all but
    the main session's) run together."""
    parts: list[list[Finding] | Awaitable[list[Finding]]] = []
    if handshake_error is not None:
        target = dataclasses.replace(target, starttls=False)
    if "smtp" in categories:
        parts += [greeting.session_findings(target, session),
                  await greeting.name_findings(target, session, resolver),
                  extensions.extension_findings(target, session),
                  _one(relay.relay_finding(target)), enumeration.enumeration_findings(target),
                  _one(smuggling.smuggling_finding(target, rcpt))]
    if "tls" in categories:
        parts.append(tls.encryption_findings(target, session, handshake_error))
        if session.tls is not None or handshake_error is not None:
            # Even when our default handshake failed: the server may speak only
            # versions a default client refuses (TLS 1.0/1.1), which this names.
            parts.append(tls.version_findings(dataclasses.replace(target, starttls=True)))
        if session.tls is not None:
            der = session.tls.getpeercert(binary_form=True)
            parts += [_one(certificate.chain_finding(target)),
                      certificate.certificate_findings(target, der),
                      [await tlsa.dane_finding(target, resolver, der)]]
    if "auth" in categories:
        parts.append(auth.auth_findings(target, session))
    done = iter(await asyncio.gather(*(part for part in parts if not isinstance(part, list))))
    return [f for part in parts for f in (part if isinstance(part, list) else next(done))]


async def _one(finding: Awaitable[Finding]) -> list[Finding]:
    return [await finding]
