"""The DNS records a domain served by us should publish, and a check of what it does
publish, resolved through the configured resolver (`mailwright dns records|check`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..config import Config
from ..dns import DNSError, NXDomain, Resolver
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


@dataclass(frozen=True)
class ClientService:
    """A listener mail clients connect to, as SRV records (RFC 6186) and client
    autoconfiguration (public/autoconfig.py) describe it."""
    protocol: str          # imap | pop3 | smtp
    role: str              # the listener's
    port: int
    implicit_tls: bool     # TLS from the first byte; else STARTTLS / STLS
    srv: str               # the SRV service label (RFC 6186 §3, RFC 8314 §5.1)
    priority: int          # SRV priority: the lowest is tried first


# role -> (protocol, SRV label, priority), most preferred first. IMAP and POP3 share
# one priority space (RFC 6186 §3.4: IMAP before POP3 here), and implicit TLS comes
# before STARTTLS (RFC 8314: cleartext, and the downgrade STARTTLS allows, are to go).
CLIENT_ROLES = {
    "imaps": ("imap", "_imaps._tcp", 0),
    "imap": ("imap", "_imap._tcp", 10),
    "pop3s": ("pop3", "_pop3s._tcp", 20),
    "pop3": ("pop3", "_pop3._tcp", 30),
    "submissions": ("smtp", "_submissions._tcp", 0),
    "submission": ("smtp", "_submission._tcp", 10),
}


def client_services(config: Config) -> list[ClientService]:
    """The configured client listeners (the first of each role), most preferred first."""
    found = []
    for role, (protocol, srv, priority) in CLIENT_ROLES.items():
        listener = next((x for x in config.listeners if x.role == role), None)
        if listener is not None:
            found.append(ClientService(protocol, role, listener.port, listener.implicit_tls,
                                       srv, priority))
    return found


def client_records(config: Config, domain: str) -> list[Record]:
    """What lets mail clients find their settings from the address alone (all optional):
    the autoconfig and autodiscover names, served by our http(s) listener, and the SRV
    records of the client listeners."""
    host = config.hostname
    records = []
    if any(x.protocol == "http" for x in config.listeners):
        records += [
            Record(f"autoconfig.{domain}", "CNAME", f"{host}.",
                   "Thunderbird autoconfiguration: http(s)://autoconfig.DOMAIN/mail/"
                   "config-v1.1.xml from the http listener (port 80/443, or a proxy), "
                   "optional"),
            Record(f"autodiscover.{domain}", "CNAME", f"{host}.",
                   "Outlook autodiscover: https://autodiscover.DOMAIN/autodiscover/"
                   "autodiscover.xml (a certificate naming it), optional"),
        ]
    for s in client_services(config):
        tls = "implicit TLS" if s.implicit_tls else "STARTTLS"
        records.append(Record(f"{s.srv}.{domain}", "SRV", f"{s.priority} 1 {s.port} {host}.",
                              f"{s.protocol.upper()} ({tls}) for mail clients "
                              "(RFC 6186, RFC 8314 §5.1), optional"))
    return records


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
    return records + client_records(config, domain)


def mta_sts_policy(config: Config) -> str:
    """The file to serve at https://mta-sts.DOMAIN/.well-known/mta-sts.txt."""
    return (f"version: STSv1\nmode: enforce\nmx: {config.hostname}\n"
            "max_age: 604800\n")


@dataclass(frozen=True)
class Finding:
    # found | missing | wrong | error (DNS failed) | warn | info (an optional record
    # not published)
    status: str
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
    addresses = await _addresses(resolver, host)
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
    for record in client_records(config, domain):
        out.append(await _optional(resolver, record, host))
    return out


async def _optional(resolver: Resolver, record: Record, host: str) -> Finding:
    """A client discovery record: absent is "info" (clients are then set up by hand),
    one that leads elsewhere a "warn"; neither fails the check."""
    what = f"{record.type} {record.name}"
    try:
        if record.type == "SRV":
            answer = await resolver.query(record.name, "SRV")
            seen = [f"{r.priority} {r.weight} {r.port} {r.target.to_text()}"
                    for r in answer.records]
            _, _, port, target = record.value.split()
            ok = any(r.port == int(port) and r.target.to_text().lower() == target
                     for r in answer.records)
        else:
            # A CNAME to us, or addresses of their own that are ours.
            answer = await resolver.query(record.name, "CNAME")
            seen = [r.target.to_text() for r in answer.records]
            ok = any(t.lower() == record.value for t in seen)
            if not seen:
                seen = await resolver.addresses(record.name)
                ok = bool(seen) and set(seen) <= set(await _addresses(resolver, host))
    except NXDomain:
        seen, ok = [], False
    except DNSError as e:
        return Finding("warn", what, f"DNS error: {e}")
    if ok:
        return Finding("found", what, ", ".join(seen))
    if not seen:
        return Finding("info", what, f"not published (optional): {record.value}")
    return Finding("warn", what, f"is {', '.join(seen)}; expected {record.value}")


async def _addresses(resolver: Resolver, host: str) -> list[str]:
    try:
        return await resolver.addresses(host)
    except DNSError:
        return []


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
