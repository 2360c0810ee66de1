"""DMARC (RFC 7489): the record at the domain or its organisational domain, what
it asks receivers to do, and where its reports go (§7.1: a report address outside
the organisation must say it agrees to receive them).

The organisational domain is found with the Public Suffix List (RFC 7489 §3.2) as
bundled by the publicsuffixlist package: a snapshot that ships with it, never
fetched at run time.
"""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList

from ...address import AddressError, parse_mailbox
from ...dns import NXDomain, Resolver
from ...trust.dmarc import Record, RecordError, parse_record
from ..findings import Finding, Severity
from .base import maker

WHY = {
    "dns.dmarc.record": "RFC 7489 §6.6.3: receivers apply the one v=DMARC1 record at "
                        "_dmarc.<domain> (or the organisational domain); none or several "
                        "means no policy",
    "dns.dmarc.syntax": "RFC 7489 §6.3: a record that does not parse is ignored",
    "dns.dmarc.policy": "RFC 7489 §6.3: p=none only monitors; quarantine or reject is what "
                        "stops forged mail",
    "dns.dmarc.pct": "RFC 7489 §6.6.4: pct below 100 applies the policy to only that share "
                     "of failing mail",
    "dns.dmarc.rua": "RFC 7489 §6.2 / §7.2: aggregate reports go to the rua mailto: URIs; "
                     "without them failures go unseen",
    "dns.dmarc.ruf": "RFC 7489 §6.2 / §7.3: failure reports go to the ruf mailto: URIs",
    "dns.dmarc.external": "RFC 7489 §7.1: reports go to another organisation's address only "
                          "when it publishes <domain>._report._dmarc.<its domain>",
    "dns.dmarc.alignment": "RFC 7489 §3.1: relaxed alignment accepts subdomains of the From "
                           "domain, strict only the exact name",
}
make = maker(WHY)


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()           # the bundled snapshot (loaded once, ~10 ms)


def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: one label below the public suffix."""
    return _suffixes().privatesuffix(domain.lower().rstrip(".")) or domain.lower()


async def _records(resolver: Resolver, domain: str) -> list[str]:
    try:
        return [t for t in await resolver.txt(f"_dmarc.{domain}") if t.startswith("v=DMARC1")]
    except NXDomain:
        return []


async def check_dmarc(resolver: Resolver, domain: str) -> list[Finding]:
    org = organizational_domain(domain)
    where, texts = domain, await _records(resolver, domain)
    if not texts and org != domain:
        where, texts = org, await _records(resolver, org)
    name = f"_dmarc.{where}"
    if not texts:
        return [make("dns.dmarc.record", Severity.FAIL, domain,
                     f"no v=DMARC1 record at _dmarc.{domain}"
                     + (f" or _dmarc.{org}" if org != domain else ""),
                     f'publish _dmarc.{org}. IN TXT "v=DMARC1; p=none; '
                     f'rua=mailto:postmaster@{org}", then tighten p= as reports allow')]
    if len(texts) > 1:
        return [make("dns.dmarc.record", Severity.FAIL, name,
                     f"{len(texts)} DMARC records: " + " | ".join(texts),
                     "keep exactly one v=DMARC1 record")]
    out = [make("dns.dmarc.record", Severity.PASS, name,
                texts[0] + (f" (inherited by {domain})" if where != domain else ""))]
    try:
        record = parse_record(texts[0])
    except RecordError as e:
        return out + [make("dns.dmarc.syntax", Severity.FAIL, name, str(e),
                           "write it as: v=DMARC1; p=quarantine; rua=mailto:<address>")]
    out.append(make("dns.dmarc.syntax", Severity.PASS, name, "the record parses"))
    out += _policy(name, record, subdomain=where != domain)
    out += await _reports(resolver, name, where, "rua", record.rua)
    if record.ruf:
        out += await _reports(resolver, name, where, "ruf", record.ruf)
    modes = {"r": "relaxed", "s": "strict"}
    out.append(make("dns.dmarc.alignment", Severity.INFO, name,
                    f"adkim={record.adkim} ({modes[record.adkim]}), "
                    f"aspf={record.aspf} ({modes[record.aspf]})"))
    return out


def _policy(name: str, record: Record, subdomain: bool) -> list[Finding]:
    policy = (record.sp or record.p) if subdomain else record.p
    tag = "sp" if subdomain and record.sp else "p"
    if policy == "none":
        out = [make("dns.dmarc.policy", Severity.WARN, name,
                    f"{tag}=none: failing mail is delivered as usual",
                    "once the reports show your own mail passing, set p=quarantine, then "
                    "p=reject")]
    else:
        out = [make("dns.dmarc.policy", Severity.PASS, name, f"{tag}={policy}")]
    if record.pct < 100:
        out.append(make("dns.dmarc.pct", Severity.WARN, name,
                        f"pct={record.pct}: the policy covers {record.pct}% of failing mail",
                        "raise pct to 100 (or remove it)"))
    return out


async def _reports(resolver: Resolver, name: str, policy_domain: str, tag: str,
                   uris: tuple[str, ...]) -> list[Finding]:
    id = f"dns.dmarc.{tag}"
    if not uris:
        return [make(id, Severity.INFO, name, "no rua=: no aggregate reports are sent",
                     f"add rua=mailto:dmarc-reports@{policy_domain} to see who sends as "
                     "the domain")]
    out = []
    for uri in uris:
        scheme, _, rest = uri.partition(":")
        if scheme.lower() != "mailto":
            out.append(make(id, Severity.WARN, name,
                            f"{tag}={uri}: receivers send reports by mail only",
                            "use a mailto: URI"))
            continue
        address = rest.split("!", 1)[0]            # §6.2: "!10m" size limit suffix
        try:
            mailbox = parse_mailbox(address)
        except AddressError as e:
            out.append(make(id, Severity.FAIL, name, f"{tag}={uri}: {e}",
                            "write it as mailto:address@domain"))
            continue
        out.append(make(id, Severity.PASS, name, f"{tag}={uri}"))
        out.append(await _authorised(resolver, name, policy_domain, tag, mailbox.domain))
    return [f for f in out if f is not None]


async def _authorised(resolver: Resolver, name: str, policy_domain: str, tag: str,
                      destination: str) -> Finding | None:
    if organizational_domain(destination) == organizational_domain(policy_domain):
        return None
    record = f"{policy_domain}._report._dmarc.{destination}"
    try:
        texts = await resolver.txt(record)
    except NXDomain:
        texts = []
    if any(t.startswith("v=DMARC1") for t in texts):
        return make("dns.dmarc.external", Severity.PASS, name,
                    f"{destination} accepts {tag} reports for {policy_domain}")
    return make("dns.dmarc.external", Severity.WARN, name,
                f"{tag} reports go to {destination}, which does not publish {record}: "
                "receivers will not send them",
                f'have {destination} publish {record}. IN TXT "v=DMARC1" (or report to '
                f"an address at {policy_domain})")
