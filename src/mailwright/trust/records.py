"""The DNS records a domain served by us should publish, and a check of what it does
publish, resolved through the configured resolver (`mailwright dns records|check`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..config import Config
from ..dns import DNSError, Resolver
from ..mx.mtasts import MTASTS, parse_txt
from ..store.directory import DKIMKeyInfo
from . import spf as spf_mod
from .dmarc import parse_record
from .dnsbridge import Bridge


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    value: str
    purpose: str


def expected(config: Config, domain: str, keys: list[DKIMKeyInfo],
             now: float | None = None) -> list[Record]:
    host = config.hostname
    stamp = time.strftime("%Y%m%d%H%M", time.gmtime(now or time.time()))
    records = [
        Record(domain, "MX", f"10 {host}.", "mail for the domain comes to this server"),
        Record(domain, "TXT", "v=spf1 mx -all", "SPF (RFC 7208): only the MX hosts send"),
    ]
    for k in keys:
        state = "signing" if k.active else "published, not signing"
        records.append(Record(f"{k.selector}._domainkey.{domain}", "TXT", k.txt,
                              f"DKIM key ({k.algorithm}, {state})"))
    records += [
        Record(f"_dmarc.{domain}", "TXT",
               f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
               "DMARC (RFC 7489): failing mail to spam, reports to postmaster"),
        Record(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={stamp}",
               "MTA-STS (RFC 8461); change id= whenever the policy file changes"),
        Record(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:postmaster@{domain}",
               "TLS reporting (RFC 8460)"),
    ]
    return records


def mta_sts_policy(config: Config) -> str:
    """The file to serve at https://mta-sts.DOMAIN/.well-known/mta-sts.txt."""
    return (f"version: STSv1\nmode: enforce\nmx: {config.hostname}\n"
            "max_age: 604800\n")


@dataclass(frozen=True)
class Finding:
    status: str            # found | missing | wrong | error (DNS failed) | warn
    what: str
    detail: str


async def check(config: Config, resolver: Resolver, domain: str,
                keys: list[DKIMKeyInfo]) -> list[Finding]:
    out: list[Finding] = []
    host = config.hostname

    async def guarded(what: str, coro) -> None:
        try:
            out.append(await coro)
        except DNSError as e:
            out.append(Finding("missing" if "no such domain" in str(e) else "error", what,
                               f"DNS error: {e}"))

    await guarded("MX", _mx(resolver, domain, host))
    addresses: list[str] = []
    try:
        addresses = await resolver.addresses(host)
    except DNSError:
        pass
    out.append(Finding("found" if addresses else "missing", "A/AAAA",
                       f"{host} -> {', '.join(addresses)}" if addresses
                       else f"{host} has no address record"))
    await guarded("SPF", _spf(resolver, domain, addresses))
    for k in keys:
        await guarded(f"DKIM {k.selector}", _dkim(resolver, domain, k))
    if not keys:
        out.append(Finding("missing", "DKIM", f"no keys: mailwright dkim generate {domain}"))
    await guarded("DMARC", _dmarc(resolver, domain))
    await guarded("MTA-STS", _mta_sts(config, resolver, domain))
    await guarded("TLS-RPT", _txt_prefix(resolver, f"_smtp._tls.{domain}", "v=TLSRPTv1",
                                         "TLS-RPT"))
    for ip in addresses:
        await guarded(f"PTR {ip}", _ptr(resolver, ip, host))
    return out


async def _mx(resolver: Resolver, domain: str, host: str) -> Finding:
    mx = await resolver.mx(domain)
    hosts = [m.host.lower() for m in mx]
    if not hosts:
        return Finding("missing", "MX", f"{domain} has no MX record")
    if host in hosts:
        return Finding("found", "MX", ", ".join(hosts))
    return Finding("wrong", "MX", f"points to {', '.join(hosts)}, not {host}")


async def _spf(resolver: Resolver, domain: str, addresses: list[str]) -> Finding:
    records = [t for t in await resolver.txt(domain) if t.lower().startswith("v=spf1")]
    if not records:
        return Finding("missing", "SPF", f"no v=spf1 TXT record at {domain}")
    if len(records) > 1:
        return Finding("wrong", "SPF", "several v=spf1 records (RFC 7208 §4.5: permerror)")
    bridge = Bridge(resolver, asyncio.get_running_loop())
    for ip in addresses:
        result = await asyncio.to_thread(spf_mod.check, bridge, ip, f"postmaster@{domain}",
                                         domain)
        if result.result != "pass":
            return Finding("wrong", "SPF", f"{records[0]!r} gives {result.result} for this "
                                           f"server's address {ip}")
    return Finding("found", "SPF", records[0])


def _p_tag(txt: str) -> str:
    for part in txt.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip() == "p":
            return "".join(value.split())
    return ""


async def _dkim(resolver: Resolver, domain: str, key: DKIMKeyInfo) -> Finding:
    name = f"{key.selector}._domainkey.{domain}"
    what = f"DKIM {key.selector}"
    records = await resolver.txt(name)
    if not records:
        return Finding("missing", what, f"publish the TXT record at {name}")
    if any(_p_tag(r) == _p_tag(key.txt) for r in records):
        return Finding("found", what, "public key matches" + ("" if key.active
                                                               else " (not signing)"))
    return Finding("wrong", what, f"{name} holds another key")


async def _dmarc(resolver: Resolver, domain: str) -> Finding:
    records = [t for t in await resolver.txt(f"_dmarc.{domain}") if t.startswith("v=DMARC1")]
    if not records:
        return Finding("missing", "DMARC", f"no v=DMARC1 record at _dmarc.{domain}")
    if len(records) > 1:
        return Finding("wrong", "DMARC", "several v=DMARC1 records: receivers ignore them all")
    try:
        record = parse_record(records[0])
    except ValueError as e:
        return Finding("wrong", "DMARC", f"{records[0]!r}: {e}")
    if record.p == "none":
        return Finding("warn", "DMARC", f"{records[0]} (p=none only monitors)")
    return Finding("found", "DMARC", records[0])


async def _txt_prefix(resolver: Resolver, name: str, prefix: str, what: str) -> Finding:
    records = [t for t in await resolver.txt(name) if t.startswith(prefix)]
    if not records:
        return Finding("missing", what, f"no {prefix} TXT record at {name}")
    return Finding("found", what, records[0])


async def _mta_sts(config: Config, resolver: Resolver, domain: str) -> Finding:
    policy_id = parse_txt(await resolver.txt(f"_mta-sts.{domain}"))
    if policy_id is None:
        return Finding("missing", "MTA-STS", f"no v=STSv1 TXT record at _mta-sts.{domain}")
    sts = MTASTS(resolver, config.queue.ca_bundle, config.queue.mta_sts_port, timeout=10)
    policy = await sts.policy(domain)
    if policy is None:
        return Finding("wrong", "MTA-STS", f"id={policy_id}, but https://mta-sts.{domain}"
                                           "/.well-known/mta-sts.txt could not be fetched")
    if not policy.allows(config.hostname):
        return Finding("wrong", "MTA-STS", f"the policy does not list {config.hostname}")
    return Finding("found", "MTA-STS", f"id={policy_id} mode={policy.mode}")


async def _ptr(resolver: Resolver, ip: str, host: str) -> Finding:
    names = [n.lower() for n in await resolver.ptr(ip)]
    if host in names:
        return Finding("found", f"PTR {ip}", host)
    if not names:
        return Finding("missing", f"PTR {ip}", f"ask the address owner for PTR {host}")
    return Finding("wrong", f"PTR {ip}", f"is {', '.join(names)}; should be {host} "
                                         "(receivers compare it with our HELO)")
