"""The domain's MX records (RFC 5321 §5.1, RFC 7505) and each mail host's addresses
and reverse DNS."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ...dns import NXDomain, Resolver, TempFailure
from ..findings import Finding, Severity
from .base import Options, is_ip_literal, is_public, lookup_failed, maker

WHY = {
    "dns.mx.present": "RFC 5321 §5.1: senders look up MX records to find where a "
                      "domain's mail goes",
    "dns.mx.null": "RFC 7505 §3: a null MX (\"0 .\") says the domain accepts no mail and "
                   "must be its only MX record",
    "dns.mx.ip-literal": "RFC 5321 §5.1 / RFC 1035 §3.3.9: an MX target is a host name; "
                         "a name made of digits is looked up as a name and fails",
    "dns.mx.cname": "RFC 2181 §10.3 / RFC 5321 §5.1: an MX target must not be an alias "
                    "(CNAME); some senders refuse or mishandle it",
    "dns.host.address": "RFC 5321 §5.1: a mail host needs an A or AAAA record to be "
                        "reached",
    "dns.host.public": "RFC 5321 §5.1: senders on the internet cannot reach private, "
                       "loopback or reserved addresses (RFC 6890)",
    "dns.ptr.present": "RFC 1912 §2.1: receivers reject or junk mail from addresses "
                       "without reverse DNS",
    "dns.ptr.fcrdns": "RFC 8601 §3 (iprev): the PTR name must resolve back to the "
                      "address (forward-confirmed reverse DNS)",
    "dns.ptr.match": "RFC 5321 §4.1.4: the host announces its name in EHLO; receivers "
                     "compare it with the address's PTR name",
}
make = maker(WHY)


@dataclass
class MXResult:
    findings: list[Finding] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)     # the exchangers, by preference


async def check_mx(resolver: Resolver, domain: str, options: Options) -> MXResult:
    out = MXResult()
    try:
        mxs = await resolver.mx(domain)
    except NXDomain:
        out.findings.append(make("dns.mx.present", Severity.FAIL, domain,
                                 f"{domain} does not exist (NXDOMAIN)",
                                 "register the domain or check its spelling"))
        return out
    if not mxs:
        addresses = await _addresses(resolver, domain)
        if addresses:
            out.findings.append(make(
                "dns.mx.present", Severity.WARN, domain,
                f"no MX record; mail goes to the domain's own address {', '.join(addresses)} "
                "(implicit MX)", f"publish an MX record: {domain}. IN MX 10 <mail host>."))
            out.hosts = [domain]
        else:
            out.findings.append(make(
                "dns.mx.present", Severity.FAIL, domain, "no MX record and no address",
                f"publish an MX record, or a null MX ({domain}. IN MX 0 .) if the domain "
                "takes no mail"))
        return out
    if any(m.host in ("", ".") for m in mxs):
        if len(mxs) == 1:
            out.findings.append(make("dns.mx.null", Severity.INFO, domain,
                                     "null MX: the domain accepts no mail"))
        else:
            out.findings.append(make(
                "dns.mx.null", Severity.FAIL, domain,
                "a null MX (0 .) beside other MX records: "
                + ", ".join(f"{m.preference} {m.host}" for m in mxs if m.host),
                "remove the null MX if the domain takes mail, else the other MX records"))
        return out
    out.findings.append(make("dns.mx.present", Severity.PASS, domain,
                             ", ".join(f"{m.preference} {m.host}" for m in mxs)))
    for m in mxs:
        if m.host.lower() not in out.hosts:
            out.hosts.append(m.host.lower())
    for host in out.hosts:
        try:
            out.findings += await check_mx_target(resolver, host)
            out.findings += await check_host(resolver, host, options)
        except TempFailure as e:         # one host's trouble leaves the others checked
            out.findings.append(lookup_failed(host, "addresses", e))
    return out


async def check_mx_target(resolver: Resolver, host: str) -> list[Finding]:
    """What only an MX target must not be: an address, or an alias."""
    if is_ip_literal(host):
        return [make("dns.mx.ip-literal", Severity.FAIL, host,
                     f"the MX target {host} is an IP address, not a host name",
                     f"name the host (mx.example.com. IN A {host.strip('[]')}) and point "
                     "the MX at that name")]
    try:
        alias = await resolver.query(host, "CNAME")
    except NXDomain:
        return []           # check_host reports the missing name
    if alias.records:
        target = alias.records[0].target.to_text(omit_final_dot=True)
        return [make("dns.mx.cname", Severity.FAIL, host,
                     f"{host} is a CNAME for {target}",
                     f"point the MX at {target} itself (or give {host} its own A/AAAA)")]
    return [make("dns.mx.cname", Severity.PASS, host, f"{host} is not an alias")]


async def check_host(resolver: Resolver, host: str, options: Options) -> list[Finding]:
    """A mail host by name: its addresses, each public, each with reverse DNS that
    confirms and names this host."""
    if is_ip_literal(host):
        return await check_address(resolver, host.strip("[]"), None, options)
    addresses = await _addresses(resolver, host)
    if not addresses:
        return [make("dns.host.address", Severity.FAIL, host, f"{host} has no A or AAAA record",
                     f"publish {host}. IN A <address> (and AAAA for IPv6)")]
    out = [make("dns.host.address", Severity.PASS, host, ", ".join(addresses))]
    for ip in addresses:
        out += await check_address(resolver, ip, host, options)
    return out


async def check_address(resolver: Resolver, ip: str, host: str | None,
                        options: Options) -> list[Finding]:
    out = []
    if is_public(ip):
        out.append(make("dns.host.public", Severity.PASS, ip, f"{ip} is a public address"))
    elif options.allow_private:
        out.append(make("dns.host.public", Severity.INFO, ip,
                        f"{ip} is not a public address (allowed: --allow-private)"))
    else:
        out.append(make("dns.host.public", Severity.FAIL, ip,
                        f"{ip} is a private, loopback or reserved address"
                        + (f" of {host}" if host else ""),
                        "publish the host's public address (or pass --allow-private for "
                        "a lab or intranet domain)"))
    out += await check_ptr(resolver, ip, host)
    return out


async def check_ptr(resolver: Resolver, ip: str, host: str | None) -> list[Finding]:
    try:
        names = [n.lower() for n in await resolver.ptr(ip)]
    except NXDomain:
        names = []
    except TempFailure as e:             # this address only: the others are still checked
        return [lookup_failed(ip, "PTR", e)]
    if not names:
        return [make("dns.ptr.present", Severity.FAIL, ip, f"{ip} has no PTR record",
                     f"ask whoever owns {ip} (the hosting provider) for a PTR record "
                     f"naming {host or 'the host'}")]
    out = [make("dns.ptr.present", Severity.PASS, ip, f"{ip} -> {', '.join(names)}")]
    confirmed = [n for n in names if await _resolves_to(resolver, n, ip)]
    if confirmed:
        out.append(make("dns.ptr.fcrdns", Severity.PASS, ip,
                        f"{confirmed[0]} resolves back to {ip}"))
    else:
        out.append(make("dns.ptr.fcrdns", Severity.FAIL, ip,
                        f"{', '.join(names)} does not resolve back to {ip}",
                        f"publish {names[0]}. IN {'AAAA' if ':' in ip else 'A'} {ip}, or "
                        f"change the PTR to a name that has it"))
    if host is not None:
        if host.lower() in names:
            out.append(make("dns.ptr.match", Severity.PASS, ip, f"PTR names {host}"))
        else:
            out.append(make("dns.ptr.match", Severity.WARN, ip,
                            f"PTR is {', '.join(names)}, not the mail host name {host}",
                            f"have the PTR of {ip} name {host} (and the host use it in "
                            "EHLO)"))
    return out


async def _addresses(resolver: Resolver, name: str) -> list[str]:
    try:
        return await resolver.addresses(name)
    except NXDomain:
        return []


async def _resolves_to(resolver: Resolver, name: str, ip: str) -> bool:
    want = ipaddress.ip_address(ip)
    return any(ipaddress.ip_address(a) == want for a in await _addresses(resolver, name))
