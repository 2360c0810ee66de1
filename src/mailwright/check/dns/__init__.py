"""DNS checks of a mail domain: one module per concern (mx, spf, dkim, dmarc, mtasts,
tlsrpt, dnssec), each returning findings. `check_domain` runs them all,
`check_server_host` the per-host part (addresses, reverse DNS) of a single server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from ...dns import Resolver, TempFailure
from ..findings import Finding
from .base import LOOKUP_WHY, Options, lookup_failed
from .dkim import check_dkim
from .dmarc import check_dmarc
from .dnssec import check_bimi, check_dnssec
from .mtasts import check_mta_sts
from .mx import check_host, check_mx
from .spf import check_spf
from .tlsrpt import check_tls_rpt

__all__ = ["DomainDNS", "Options", "check_domain", "check_server_host"]

WHY = LOOKUP_WHY


@dataclass(frozen=True)
class DomainDNS:
    findings: list[Finding]
    mx_hosts: list[str]        # where the domain's mail goes (the SMTP probes' targets)


async def _guarded(subject: str, what: str, check: Awaitable[list[Finding]]) -> list[Finding]:
    try:
        return await check
    except TempFailure as e:
        return [lookup_failed(subject, what, e)]


async def check_domain(resolver: Resolver, domain: str, options: Options) -> DomainDNS:
    try:
        mx = await check_mx(resolver, domain, options)
        findings, hosts = list(mx.findings), mx.hosts
    except TempFailure as e:
        findings, hosts = [lookup_failed(domain, "MX", e)], []
    parts = await asyncio.gather(
        _guarded(domain, "SPF", check_spf(resolver, domain)),
        _guarded(domain, "DKIM", check_dkim(resolver, domain, options.selectors)),
        _guarded(domain, "DMARC", check_dmarc(resolver, domain)),
        _guarded(domain, "MTA-STS", check_mta_sts(resolver, domain, hosts, options)),
        _guarded(domain, "TLS-RPT", check_tls_rpt(resolver, domain)),
        _guarded(domain, "DNSSEC", check_dnssec(resolver, domain)),
        _guarded(domain, "BIMI", check_bimi(resolver, domain)))
    for part in parts:
        findings += part
    return DomainDNS(findings, hosts)


async def check_server_host(resolver: Resolver, host: str, options: Options) -> list[Finding]:
    return await _guarded(host, "addresses", check_host(resolver, host, options))
