"""The DNS records a local domain should publish, and a check of what it publishes
(through the configured resolver). The records themselves are trust/records.py's."""

from __future__ import annotations

from dataclasses import dataclass

from ..trust import records
from . import validate
from .context import Context

# A finding with one of these means the domain is not set up as printed.
FAILING = frozenset({"missing", "wrong", "error"})


@dataclass(frozen=True)
class DnsRecords:
    domain: str
    hostname: str          # this server: MX target, and the name its PTR should give
    records: list[records.Record]
    mta_sts_policy: str    # served at https://mta-sts.<domain>/.well-known/mta-sts.txt


@dataclass(frozen=True)
class DnsCheck:
    domain: str
    findings: list[records.Finding]

    @property
    def failed(self) -> bool:
        return any(f.status in FAILING for f in self.findings)


class Dns:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    async def records(self, domain: str) -> DnsRecords:
        canonical = await validate.local_domain(self.ctx.store, domain)
        cfg = self.ctx.config
        keys = await self.ctx.store.dkim_keys(canonical)
        return DnsRecords(canonical, cfg.hostname,
                          records.expected(cfg, canonical, keys, self.ctx.clock()),
                          records.mta_sts_policy(cfg))

    async def check(self, domain: str) -> DnsCheck:
        canonical = await validate.local_domain(self.ctx.store, domain)
        keys = await self.ctx.store.dkim_keys(canonical)
        return DnsCheck(canonical, await records.check(self.ctx.config, self.ctx.resolver,
                                                       canonical, keys))
