"""One asynchronous DNS resolver for everything (MX routing, SPF, DKIM, DMARC, rDNS).

dnspython does the protocol; this module fixes the policy: which nameservers
(configurable, so tests point it at a loopback server), answers cached by TTL,
and outcomes mail code can act on — an empty answer is not an error, NXDOMAIN
is permanent, SERVFAIL and timeouts are temporary (RFC 5321 §5.1, RFC 7208 §5).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

from .config import DNSSettings


class DNSError(Exception):
    """Base of resolution failures."""


class NXDomain(DNSError):
    """The name does not exist: a permanent failure."""


class TempFailure(DNSError):
    """SERVFAIL, timeout or no reachable server: try again later."""


@dataclass(frozen=True)
class Answer:
    name: str
    rdtype: str
    records: tuple          # dnspython rdata objects
    ttl: int
    authenticated: bool     # the AD bit from a validating resolver (RFC 4035 §3.2.3)


@dataclass(frozen=True)
class MX:
    preference: int
    host: str               # without the trailing dot; "" for a null MX (RFC 7505)


# Answers kept in front of dnspython's own cache: a hit there still costs a full
# resolution setup (~100 us), which per-message SPF/DMARC lookups would pay every time.
FRONT_CACHE_SIZE = 20_000
# Empty answers and NXDOMAIN are kept this long (RFC 2308 negative caching, bounded).
NEGATIVE_TTL = 30.0


class Resolver:
    @classmethod
    def from_settings(cls, settings: DNSSettings) -> Resolver:
        """The resolver the config's [dns] section describes (empty nameservers: the
        system's /etc/resolv.conf)."""
        return cls(list(settings.nameservers), settings.port, settings.timeout)

    def __init__(self, nameservers: list[str] | None = None, port: int = 53,
                 timeout: float = 5.0, cache: bool = True):
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
        else:
            self._resolver = dns.asyncresolver.Resolver()      # /etc/resolv.conf
        self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        # Ask for DNSSEC status; a validating resolver sets AD on verified answers.
        self._resolver.use_edns(0, dns.flags.DO, 1232)
        self._resolver.flags = dns.flags.RD | dns.flags.AD
        self._front: OrderedDict[tuple[str, str], tuple[float, Answer | None]] | None = \
            OrderedDict() if cache else None
        if cache:
            self._resolver.cache = dns.resolver.Cache()

    async def query(self, name: str, rdtype: str) -> Answer:
        """Records of one type; an empty Answer when the name has none of that type."""
        if self._front is None:
            return await self._query(name, rdtype)
        key = (name.lower().rstrip("."), rdtype)
        now = time.monotonic()
        hit = self._front.get(key)
        if hit is not None and hit[0] > now:
            if hit[1] is None:
                raise NXDomain(f"{name}: no such domain")
            return hit[1]
        try:
            answer = await self._query(name, rdtype)
        except NXDomain:
            self._remember(key, now + NEGATIVE_TTL, None)
            raise
        self._remember(key, now + (answer.ttl if answer.records else NEGATIVE_TTL), answer)
        return answer

    def _remember(self, key: tuple[str, str], expires: float, answer: Answer | None) -> None:
        front = self._front
        assert front is not None
        front[key] = (expires, answer)
        front.move_to_end(key)
        while len(front) > FRONT_CACHE_SIZE:
            front.popitem(last=False)

    async def _query(self, name: str, rdtype: str) -> Answer:
        try:
            ans = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            raise NXDomain(f"{name}: no such domain") from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout,
                dns.resolver.LifetimeTimeout) as e:
            raise TempFailure(f"{name} {rdtype}: {e.__class__.__name__}") from None
        except dns.exception.DNSException as e:
            raise TempFailure(f"{name} {rdtype}: {e}") from None
        rrset = ans.rrset
        return Answer(name, rdtype, tuple(rrset) if rrset is not None else (),
                      rrset.ttl if rrset is not None else 0,
                      bool(ans.response.flags & dns.flags.AD))

    async def mx(self, domain: str) -> list[MX]:
        """MX records sorted by preference; [] when the domain has none (then the
        caller falls back to A/AAAA, RFC 5321 §5.1); [MX(0, "")] for a null MX."""
        answer = await self.query(domain, "MX")
        records = [MX(r.preference, r.exchange.to_text(omit_final_dot=True))
                   for r in answer.records]
        if len(records) == 1 and records[0].host in ("", "."):
            return [MX(records[0].preference, "")]
        return sorted(records, key=lambda m: m.preference)

    async def txt(self, name: str) -> list[str]:
        """TXT strings, each record's character-strings joined (RFC 7208 §3.3)."""
        answer = await self.query(name, "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.records]

    async def addresses(self, name: str) -> list[str]:
        """A and AAAA addresses; NXDomain only when the name does not exist at all."""
        out = []
        for rdtype in ("A", "AAAA"):
            answer = await self.query(name, rdtype)
            out += [r.address for r in answer.records]
        return out

    async def ptr(self, ip: str) -> list[str]:
        name = dns.reversename.from_address(str(ipaddress.ip_address(ip))).to_text()
        answer = await self.query(name, "PTR")
        return [r.target.to_text(omit_final_dot=True) for r in answer.records]
