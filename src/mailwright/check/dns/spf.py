"""SPF (RFC 7208) as published, not as evaluated for one address: one record, valid
terms, the DNS-querying terms counted through every include and redirect (the limit
of 10 applies to a whole evaluation, §4.6.4), void lookups, the `all` that ends it.

Each term's syntax is pyspf's (the library that checks SPF on delivery); the walk
through the includes is here, since pyspf stops at the first matching term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import spf as pyspf

from ...dns import NXDomain, Resolver
from ..findings import Finding, Severity
from .base import maker

WHY = {
    "dns.spf.record": "RFC 7208 §4.5: a domain has exactly one v=spf1 record; none leaves "
                      "forgeries unchecked, several make every check a permerror",
    "dns.spf.syntax": "RFC 7208 §4.6: a syntax error anywhere makes the result permerror, "
                      "which DMARC counts as a fail",
    "dns.spf.lookups": "RFC 7208 §4.6.4: at most 10 DNS-querying terms (include, a, mx, "
                       "ptr, exists, redirect) in a whole evaluation, includes counted",
    "dns.spf.void": "RFC 7208 §4.6.4: more than 2 lookups that find nothing make the "
                    "result permerror",
    "dns.spf.include": "RFC 7208 §5.2 / §6.1: an include or redirect to a domain without "
                       "an SPF record is a permerror",
    "dns.spf.all": "RFC 7208 §5.1: the final all decides for every other sender; +all lets "
                   "anyone send as the domain",
    "dns.spf.ptr": "RFC 7208 §5.5: the ptr mechanism is slow and unreliable and SHOULD NOT "
                   "be used",
}
make = maker(WHY)

MAX_LOOKUPS = pyspf.MAX_LOOKUP          # 10, RFC 7208 §4.6.4
MAX_VOID = pyspf.MAX_VOID_LOOKUPS       # 2
MAX_MX_NAMES = pyspf.MAX_MX             # 10 names per mx term
# The walk stops following includes past this many lookups (the verdict is made long
# before; a loop of includes must not run forever) and below this depth.
WALK_LOOKUPS = 40
WALK_DEPTH = 10
# A test address for pyspf's macro expansion (RFC 5737 documentation space).
PROBE_IP = "192.0.2.1"


def spf_records(texts: list[str]) -> list[str]:
    return [t for t in texts if pyspf.RE_SPF.match(t.encode("utf-8", "replace"))]


@dataclass
class Walk:
    lookups: int = 0
    voids: list[str] = field(default_factory=list)          # "a:name", "mx:name", ...
    errors: list[str] = field(default_factory=list)         # "domain: term: problem"
    missing: list[str] = field(default_factory=list)        # include/redirect targets
    ptr: list[str] = field(default_factory=list)            # domains using ptr
    all_term: str = ""                                       # the top-level final all
    stopped: bool = False                                    # over WALK_LOOKUPS / depth
    redirect_missing: bool = False                           # top-level redirect= broken


async def check_spf(resolver: Resolver, domain: str) -> list[Finding]:
    try:
        records = spf_records(await resolver.txt(domain))
    except NXDomain:
        records = []
    if not records:
        return [make("dns.spf.record", Severity.WARN, domain, "no v=spf1 TXT record",
                     f'publish {domain}. IN TXT "v=spf1 mx -all" (naming every host that '
                     "sends as the domain)")]
    if len(records) > 1:
        return [make("dns.spf.record", Severity.FAIL, domain,
                     f"{len(records)} SPF records: " + " | ".join(records),
                     "merge them into one v=spf1 record")]
    out = [make("dns.spf.record", Severity.PASS, domain, records[0])]
    walk = Walk()
    await _walk(resolver, domain, records[0], walk, (domain,), top=True)
    return out + _verdicts(domain, walk)


def _verdicts(domain: str, walk: Walk) -> list[Finding]:
    out = []
    if walk.errors:
        out.append(make("dns.spf.syntax", Severity.FAIL, domain, "; ".join(walk.errors),
                        "correct the terms named (RFC 7208 §12 gives the grammar)"))
    else:
        out.append(make("dns.spf.syntax", Severity.PASS, domain, "every term is valid"))
    count = f"{walk.lookups}{'+' if walk.stopped else ''} DNS-querying terms"
    if walk.lookups > MAX_LOOKUPS:
        out.append(make("dns.spf.lookups", Severity.FAIL, domain,
                        f"{count} counted through includes (limit {MAX_LOOKUPS})",
                        "replace includes by the ip4:/ip6: ranges they stand for, or drop "
                        "senders no longer used"))
    elif walk.lookups >= MAX_LOOKUPS - 1:
        out.append(make("dns.spf.lookups", Severity.WARN, domain,
                        f"{count}: at the limit of {MAX_LOOKUPS}",
                        "one more include by a provider breaks SPF: flatten some includes"))
    else:
        out.append(make("dns.spf.lookups", Severity.PASS, domain,
                        f"{count} (limit {MAX_LOOKUPS})"))
    if len(walk.voids) > MAX_VOID:
        out.append(make("dns.spf.void", Severity.FAIL, domain,
                        f"{len(walk.voids)} lookups find nothing: {', '.join(walk.voids)}",
                        "remove the terms naming hosts or domains that do not exist"))
    elif walk.voids:
        out.append(make("dns.spf.void", Severity.WARN, domain,
                        f"lookups that find nothing: {', '.join(walk.voids)}",
                        "remove the terms naming hosts or domains that do not exist"))
    else:
        out.append(make("dns.spf.void", Severity.PASS, domain, "no void lookups"))
    for target in walk.missing:
        out.append(make("dns.spf.include", Severity.FAIL, domain, target,
                        "remove the term, or have the target domain publish its SPF record"))
    for where in walk.ptr:
        out.append(make("dns.spf.ptr", Severity.WARN, domain, f"{where} uses ptr",
                        "list the senders' addresses with ip4:/ip6: or a: instead"))
    if not walk.redirect_missing:
        out.append(_all_finding(domain, walk.all_term))
    return out


def _all_finding(domain: str, term: str) -> Finding:
    qualifier = term[0] if term[:1] in "+-~?" and term else "+"
    if not term:
        return make("dns.spf.all", Severity.WARN, domain,
                    "no all and no redirect: other senders get neutral (RFC 7208 §4.7)",
                    "end the record with -all (or ~all)")
    if qualifier == "+":
        return make("dns.spf.all", Severity.FAIL, domain,
                    f"{term}: every host on the internet may send as {domain}",
                    "end the record with -all (or ~all)")
    if qualifier == "?":
        return make("dns.spf.all", Severity.WARN, domain,
                    "?all: other senders get neutral, as if there were no SPF",
                    "end the record with -all (or ~all)")
    if qualifier == "~":
        return make("dns.spf.all", Severity.INFO, domain,
                    "~all: other senders get softfail (marked, not rejected)",
                    "use -all once every sender is listed")
    return make("dns.spf.all", Severity.PASS, domain, "-all: other senders fail")


async def _walk(resolver: Resolver, domain: str, record: str, walk: Walk,
                chain: tuple[str, ...], top: bool = False) -> None:
    """Count the DNS-querying terms of one record and of the records it includes or
    redirects to (depth first, as an evaluation would meet them)."""
    query = pyspf.query(i=PROBE_IP, s=f"postmaster@{domain}", h=domain, strict=True)
    redirect = ""
    seen_modifiers: set[str] = set()
    has_all = False
    for term in record.split()[1:]:
        modifier = pyspf.RE_MODIFIER.match(term)
        if modifier:
            name = modifier.group(1).lower()
            if name in ("redirect", "exp"):
                if name in seen_modifiers:         # RFC 7208 §6: at most once each
                    walk.errors.append(f"{domain}: {name}= appears twice")
                seen_modifiers.add(name)
                if name == "redirect":
                    redirect = term[modifier.end():]
            continue
        try:
            _, kind, arg, _, _ = query.validate_mechanism(term)
        except pyspf.PermError as e:
            walk.errors.append(f"{domain}: {term}: {e.msg}")
            continue
        if kind == "all":
            has_all = True
            if top:
                walk.all_term = term
            continue
        if kind not in ("a", "mx", "ptr", "exists", "include"):
            continue                              # ip4 / ip6: no lookup
        walk.lookups += 1
        if kind == "ptr":
            walk.ptr.append(domain)
        if "%" in term:                            # a macro: depends on the message
            continue
        if kind == "include":
            await _follow(resolver, arg, f"include:{arg}", walk, chain)
        elif not await _finds_something(resolver, kind, arg):
            walk.voids.append(f"{kind}:{arg}")
        elif kind == "mx" and len(await _mx_names(resolver, arg)) > MAX_MX_NAMES:
            walk.errors.append(f"{domain}: mx:{arg}: more than {MAX_MX_NAMES} MX names")
    if redirect and not has_all:                   # RFC 7208 §6.1: ignored beside all
        walk.lookups += 1
        if "%" not in redirect:
            target = redirect.rstrip(".").lower()
            found = await _follow(resolver, target, f"redirect={target}", walk, chain,
                                  top_all=top)
            if not found and top:
                walk.redirect_missing = True       # §6.1: a permerror, reported as such


async def _follow(resolver: Resolver, target: str, term: str, walk: Walk,
                  chain: tuple[str, ...], top_all: bool = False) -> bool:
    """Walk an included or redirected-to record; False when it has none."""
    if target in chain:
        walk.errors.append(f"{chain[-1]}: {term}: loops back to {target}")
        return True
    if walk.lookups > WALK_LOOKUPS or len(chain) > WALK_DEPTH:
        walk.stopped = True
        return True
    try:
        records = spf_records(await resolver.txt(target))
    except NXDomain:
        records = []
    if len(records) != 1:
        walk.missing.append(f"{chain[-1]}: {term}: "
                            + ("no SPF record there" if not records
                               else f"{len(records)} SPF records there"))
        return False
    await _walk(resolver, target, records[0], walk, (*chain, target), top=top_all)
    return True


async def _finds_something(resolver: Resolver, kind: str, name: str) -> bool:
    """Does the term's lookup return anything? (§4.6.4 void: NXDOMAIN or no answer)"""
    try:
        if kind == "a":
            return bool(await resolver.addresses(name))
        if kind == "mx":
            return bool(await _mx_names(resolver, name))
        if kind == "exists":
            return bool((await resolver.query(name, "A")).records)
    except NXDomain:
        return False
    return True                                    # ptr: depends on the sender


async def _mx_names(resolver: Resolver, name: str) -> list[str]:
    return [m.host for m in await resolver.mx(name) if m.host]
