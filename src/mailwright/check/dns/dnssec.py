"""DNSSEC status of the domain's MX answer (the resolver's AD bit, RFC 4035 §3.2.3) and
BIMI presence: information, never a failure (most domains have neither). TLSA records
are the SMTP probes' (tls.dane), which compare them with the served certificate."""

from __future__ import annotations

from ...dns import NXDomain, Resolver
from ..findings import Finding, Severity
from .base import maker

WHY = {
    "dns.dnssec.status": "RFC 4035 §3.2.3: the AD bit from a validating resolver says the "
                         "answers were signed and verified; DANE needs it",
    "dns.bimi.record": "BIMI (draft-brand-indicators-for-message-identification): a logo "
                       "shown by some mailbox providers for DMARC-enforced mail",
}
make = maker(WHY)


async def check_dnssec(resolver: Resolver, domain: str) -> list[Finding]:
    try:
        answer = await resolver.query(domain, "MX")
    except NXDomain:
        return []
    return [make("dns.dnssec.status", Severity.INFO, domain,
                 "answers validated (AD bit set)" if answer.authenticated else
                 "answers not validated: the domain is unsigned or the resolver does not "
                 "validate",
                 "" if answer.authenticated else
                 "sign the zone (DNSSEC) and use a validating resolver to see it here")]


async def check_bimi(resolver: Resolver, domain: str) -> list[Finding]:
    name = f"default._bimi.{domain}"
    try:
        texts = [t for t in await resolver.txt(name) if t.startswith("v=BIMI1")]
    except NXDomain:
        texts = []
    return [make("dns.bimi.record", Severity.INFO, name,
                 texts[0] if texts else "no BIMI record")]
