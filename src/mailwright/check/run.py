"""Orchestration: which probes run for a target, and the report they make.

A domain: the DNS checks (check/dns/), then the SMTP, TLS and AUTH probes of each of
its MX hosts (check/smtp, `server_findings`), all at once. One server: the DNS
checks of that host (addresses, reverse DNS) and its probes. `categories` (--only)
narrows both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from ..dns import Resolver, TempFailure
from ..mx.routing import PermanentRouteError, exchangers
from . import dns as dns_checks
from .dns.base import Options, is_ip_literal
from .findings import CATEGORIES, Finding, Report
from .smtp import server_findings
from .target import DEFAULT_PORT, Target

PROBES = frozenset({"smtp", "tls", "auth"})      # the categories check/smtp answers
TIMEOUT = 30.0                                   # per network step of a probe


def categories_of(only: Iterable[str] | None) -> frozenset[str]:
    """--only values (each one of CATEGORIES; none: all of them)."""
    chosen = frozenset(only or CATEGORIES)
    unknown = chosen - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown category {sorted(unknown)[0]!r}: choose from "
                         + ", ".join(CATEGORIES))
    return chosen


async def _probe(hosts: list[str], port: int, resolver: Resolver,
                 categories: frozenset[str], timeout: float, cafile: str,
                 rcpt: str) -> list[Finding]:
    """The SMTP/TLS/AUTH probes of each host, all at once. rcpt: an address the hosts
    accept, for the smuggling probe (which never completes a message)."""
    probes = categories & PROBES
    if not probes or not hosts:
        return []
    results = await asyncio.gather(*(
        server_findings(host, port, resolver=resolver, categories=probes, timeout=timeout,
                        expect_name=None if is_ip_literal(host) else host, cafile=cafile,
                        rcpt=rcpt)
        for host in hosts))
    return [f for found in results for f in found]


async def check_domain(domain: str, *, resolver: Resolver, options: Options,
                       categories: frozenset[str] = frozenset(CATEGORIES),
                       port: int = DEFAULT_PORT, timeout: float = TIMEOUT, rcpt: str = "",
                       clock: Callable[[], float] = time.time) -> Report:
    started, t0 = clock(), time.monotonic()
    findings: list[Finding] = []
    if "dns" in categories:
        result = await dns_checks.check_domain(resolver, domain, options)
        findings += result.findings
        hosts = result.mx_hosts
    else:
        hosts = await _exchangers(resolver, domain)
    findings += await _probe(hosts, port, resolver, categories, timeout, options.cafile, rcpt)
    return Report(domain, tuple(findings), started, time.monotonic() - t0)


async def _exchangers(resolver: Resolver, domain: str) -> list[str]:
    """The MX hosts to probe when the DNS checks (which report why there are none)
    are not run."""
    try:
        return await exchangers(resolver, domain)
    except (PermanentRouteError, TempFailure):
        return []


async def check_server(host: str, port: int, *, resolver: Resolver, options: Options,
                       categories: frozenset[str] = frozenset(CATEGORIES),
                       timeout: float = TIMEOUT, rcpt: str = "", label: str = "",
                       clock: Callable[[], float] = time.time) -> Report:
    started, t0 = clock(), time.monotonic()
    findings: list[Finding] = []
    if "dns" in categories:
        findings += await dns_checks.check_server_host(resolver, host, options)
    findings += await _probe([host], port, resolver, categories, timeout, options.cafile,
                             rcpt)
    return Report(label or f"{host}:{port}", tuple(findings), started, time.monotonic() - t0)


async def check_target(target: Target, *, resolver: Resolver, options: Options,
                       categories: frozenset[str] = frozenset(CATEGORIES),
                       port: int | None = None, timeout: float = TIMEOUT,
                       rcpt: str = "") -> Report:
    """`mailwright check TARGET`: a domain, or one server (its own port, else `port`,
    else 25)."""
    port = port or DEFAULT_PORT
    if target.is_server:
        return await check_server(target.host, target.port or port, resolver=resolver,
                                  options=options, categories=categories, timeout=timeout,
                                  rcpt=rcpt, label=target.label(port))
    return await check_domain(target.host, resolver=resolver, options=options,
                              categories=categories, port=port, timeout=timeout, rcpt=rcpt)
