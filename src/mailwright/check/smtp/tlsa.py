"""DANE (RFC 7672): the TLSA records at _port._tcp.<host> against the certificate the
server presents, matched as mx/dane.py matches them for our deliveries."""

from __future__ import annotations

import ipaddress

from ...dns import DNSError, NXDomain, Resolver
from ...mx import dane
from ..findings import Finding, Severity
from .session import Target

WHY = "RFC 7672 §3: DANE senders refuse a certificate that matches none of the TLSA records"


async def dane_finding(target: Target, resolver: Resolver, der: bytes) -> Finding:
    name = f"_{target.port}._tcp.{target.expect_name}"
    try:
        ipaddress.ip_address(target.expect_name)
        return target.finding("tls.dane", Severity.INFO,
                              "no TLSA lookup: the server was named by its address")
    except ValueError:
        pass
    try:
        answer = await resolver.query(name, "TLSA")
    except NXDomain:
        answer = None
    except DNSError as e:
        return target.finding("tls.dane", Severity.INFO, f"TLSA lookup {name} failed: {e}")
    if answer is None or not answer.records:
        return target.finding("tls.dane", Severity.INFO, f"no TLSA records at {name}",
                              "RFC 7672: DANE lets senders authenticate the MX without CAs",
                              "with DNSSEC, publish a TLSA 3 1 1 record for the key")
    records = tuple(dane.TLSA(r.usage, r.selector, r.mtype, r.cert) for r in answer.records)
    shown = "; ".join(f"{r.usage} {r.selector} {r.mtype} {r.data.hex()[:16]}…" for r in records)
    if not dane.authenticates(records):
        # Only DANE-EE (usage 3) can be checked here: DANE-TA needs the served chain,
        # which the ssl module does not expose (see mx/dane.py).
        return target.finding("tls.dane", Severity.INFO,
                              f"TLSA records at {name} ({shown}) are not DANE-EE (usage 3): "
                              "not checked against the certificate")
    if not dane.matches(der, records):
        return target.finding("tls.dane", Severity.FAIL,
                              f"the certificate matches none of the TLSA records at {name} "
                              f"({shown})", WHY,
                              "publish TLSA records for the new key before deploying it "
                              "(RFC 7671 §8.1: key rollover)")
    if not answer.authenticated:
        return target.finding("tls.dane", Severity.WARN,
                              f"TLSA at {name} matches, but the answer is not DNSSEC-validated",
                              "RFC 7672 §2.2: senders use TLSA records only from signed zones",
                              "sign the zone (DNSSEC)")
    return target.finding("tls.dane", Severity.PASS,
                          f"the certificate matches the validated TLSA records at {name}")
