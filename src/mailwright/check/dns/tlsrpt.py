"""SMTP TLS reporting (RFC 8460): where senders report TLS failures to this domain."""

from __future__ import annotations

from ...dns import NXDomain, Resolver
from ..findings import Finding, Severity
from .base import maker, tags

WHY = {
    "dns.tls-rpt.record": "RFC 8460 §3: one v=TLSRPTv1 record at _smtp._tls.<domain> with "
                          "rua= mailto: or https: URIs tells senders where to report TLS "
                          "failures",
}
make = maker(WHY)


async def check_tls_rpt(resolver: Resolver, domain: str) -> list[Finding]:
    name = f"_smtp._tls.{domain}"
    try:
        texts = [t for t in await resolver.txt(name) if t.startswith("v=TLSRPTv1")]
    except NXDomain:
        texts = []
    if not texts:
        return [make("dns.tls-rpt.record", Severity.INFO, name, "no TLS-RPT record",
                     f'publish {name}. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@{domain}"')]
    if len(texts) > 1:
        return [make("dns.tls-rpt.record", Severity.FAIL, name,
                     f"{len(texts)} records: senders use none (RFC 8460 §3)",
                     "keep exactly one v=TLSRPTv1 record")]
    uris = [u.strip() for u in tags(texts[0]).get("rua", "").split(",") if u.strip()]
    bad = [u for u in uris if u.partition(":")[0].lower() not in ("mailto", "https")
           or not u.partition(":")[2]]
    if not uris or bad:
        return [make("dns.tls-rpt.record", Severity.FAIL, name,
                     f"{texts[0]}: " + ("no rua=" if not uris else f"bad URI {bad[0]}"),
                     f'write it as "v=TLSRPTv1; rua=mailto:postmaster@{domain}"')]
    return [make("dns.tls-rpt.record", Severity.PASS, name, texts[0])]
