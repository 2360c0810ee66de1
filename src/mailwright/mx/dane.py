"""DANE for SMTP (RFC 7672): TLSA records, trusted only from DNSSEC-validated answers,
say which certificate the MX host must present.

DANE-EE (usage 3) pins the server's own certificate or public key; names and CAs
are not consulted (§3.1.1). DANE-TA (usage 2) needs the peer's full chain, which
the ssl module does not expose before Python 3.13: such records count as "TLS
required, not authenticated" here, as RFC 7672 §2.2 asks for unusable records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..dns import DNSError, Resolver


@dataclass(frozen=True)
class TLSA:
    usage: int
    selector: int
    mtype: int
    data: bytes


async def lookup(resolver: Resolver, domain: str, hosts: list[str],
                 port: int) -> dict[str, tuple[TLSA, ...]]:
    """Validated TLSA records per MX host (RFC 7672 §2.2: _port._tcp.host); only when
    the MX answer was validated too (§2.2.1), since an unsigned MX name proves
    nothing. A host without validated records maps to () (opportunistic TLS)."""
    out: dict[str, tuple[TLSA, ...]] = {host: () for host in hosts}
    try:
        if not (await resolver.query(domain, "MX")).authenticated:
            return out
        for host in hosts:
            answer = await resolver.query(f"_{port}._tcp.{host}", "TLSA")
            if answer.authenticated:
                out[host] = tuple(TLSA(r.usage, r.selector, r.mtype, r.cert)
                                  for r in answer.records)
    except DNSError:
        pass     # no validated records: plain opportunistic TLS
    return out


def authenticates(records: tuple[TLSA, ...]) -> bool:
    return any(r.usage == 3 for r in records)


def matches(der_cert: bytes, records: tuple[TLSA, ...]) -> bool:
    """Does the presented certificate match one usable (DANE-EE) record?"""
    cert = x509.load_der_x509_certificate(der_cert)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    for r in records:
        if r.usage != 3:
            continue
        blob = der_cert if r.selector == 0 else spki if r.selector == 1 else None
        if blob is None:
            continue
        digest = {0: lambda b: b, 1: lambda b: hashlib.sha256(b).digest(),
                  2: lambda b: hashlib.sha512(b).digest()}.get(r.mtype)
        if digest is not None and digest(blob) == r.data:
            return True
    return False
