"""Connection checks: forward-confirmed reverse DNS of the client (RFC 8601 §3 "iprev")
and the HELO/EHLO name it gave (RFC 5321 §4.1.4)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..dns import NXDomain, Resolver, TempFailure

# RFC 8601 §3 via RFC 1912 §2.1: at most this many PTR names are confirmed.
MAX_PTR_NAMES = 10
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                       r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class IprevResult:
    result: str                  # pass | fail | temperror (RFC 8601 §2.7.3)
    ip: str
    names: tuple[str, ...] = ()  # the confirmed names (pass) or the PTR names (fail)
    reason: str = ""


async def iprev(resolver: Resolver, ip: str) -> IprevResult:
    """PTR names of ip, kept when one of their A/AAAA records is ip again."""
    try:
        names = (await resolver.ptr(ip))[:MAX_PTR_NAMES]
    except NXDomain:
        return IprevResult("fail", ip, reason="no PTR record")
    except TempFailure as e:
        return IprevResult("temperror", ip, reason=str(e))
    if not names:
        return IprevResult("fail", ip, reason="no PTR record")
    want = ipaddress.ip_address(ip)
    confirmed, temp = [], ""
    for name in names:
        try:
            addresses = await resolver.addresses(name)
        except NXDomain:
            continue
        except TempFailure as e:
            temp = str(e)
            continue
        if any(ipaddress.ip_address(a) == want for a in addresses):
            confirmed.append(name.lower())
    if confirmed:
        return IprevResult("pass", ip, tuple(confirmed))
    if temp:
        return IprevResult("temperror", ip, tuple(names), temp)
    return IprevResult("fail", ip, tuple(names), "no PTR name resolves back to the address")


@dataclass(frozen=True)
class HeloResult:
    result: str                  # pass | fail | temperror
    helo: str
    reason: str = ""


async def check_helo(resolver: Resolver, helo: str, ip: str, iprev_result: IprevResult,
                     own_names: set[str], own_ips: set[str]) -> HeloResult:
    """RFC 5321 §4.1.4: a FQDN (or an address literal of the client); it must not
    claim to be us; the name should resolve, ideally to the client or to its rDNS name."""
    name = helo.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        literal = name[1:-1]
        if literal.lower().startswith("ipv6:"):
            literal = literal[5:]
        try:
            ok = ipaddress.ip_address(literal) == ipaddress.ip_address(ip)
        except ValueError:
            return HeloResult("fail", helo, "malformed address literal")
        if literal in own_ips and literal != ip:
            return HeloResult("fail", helo, "claims our address")
        return HeloResult("pass" if ok else "fail", helo,
                          "" if ok else "address literal is not the client's address")
    if not _HOSTNAME.match(name):
        return HeloResult("fail", helo, "not a fully qualified domain name")
    if name in own_names:
        return HeloResult("fail", helo, "claims to be this server")
    if name in iprev_result.names:
        return HeloResult("pass", helo)
    try:
        addresses = await resolver.addresses(name)
    except NXDomain:
        return HeloResult("fail", helo, "name does not exist")
    except TempFailure as e:
        return HeloResult("temperror", helo, str(e))
    if not addresses:
        return HeloResult("fail", helo, "name has no address")
    if any(a in own_ips for a in addresses) and ip not in addresses:
        return HeloResult("fail", helo, "name resolves to our address")
    if ip in addresses:
        return HeloResult("pass", helo)
    return HeloResult("fail", helo, "name does not resolve to the client address nor match "
                                    "its reverse DNS")
