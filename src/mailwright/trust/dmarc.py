"""DMARC (RFC 7489 as revised by DMARCbis): policy discovery, alignment, disposition.

The policy and the organisational domain are found by the DMARCbis DNS tree walk
(§4.10) rather than a public-suffix list: _dmarc records are looked up from the
author domain towards the root, and a psd=y / psd=n tag says where the
organisation boundary lies. Lookups go through our cached resolver.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, replace

from ..dns import NXDomain, Resolver, TempFailure
from .dkim import DKIMResult
from .spf import SPFResult

POLICIES = ("none", "quarantine", "reject")
# DMARCbis §4.10.1: at most eight lookups; a longer name is cut to its last 7 labels.
MAX_WALK = 8


@dataclass(frozen=True)
class Record:
    p: str = "none"
    sp: str | None = None          # subdomains (RFC 7489 §6.3)
    np: str | None = None          # non-existent subdomains (DMARCbis)
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100                 # RFC 7489; DMARCbis replaced it with t=
    testing: bool = False          # DMARCbis t=y
    psd: str = "u"                 # y | n | u (DMARCbis §4.7)
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()      # failure reports (RFC 7489 §7.3)


class RecordError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def parse_record(text: str) -> Record:
    """RFC 7489 §6.3 tag list; v=DMARC1 first. Unknown tags are ignored (§6.3).
    Remembered by its text: a domain's mail comes again and again with the same record
    (from the resolver's cache), and a Record is immutable."""
    tags = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise RecordError(f"not a tag=value pair: {part.strip()!r}")
        tags.setdefault(key.strip().lower(), value.strip())
    if next(iter(tags), None) != "v" or tags["v"] != "DMARC1":
        raise RecordError("v=DMARC1 must come first")
    rua, ruf = (tuple(u.strip() for u in tags.get(name, "").split(",") if u.strip())
                for name in ("rua", "ruf"))

    def policy(name: str, default: str | None) -> str | None:
        value = tags.get(name)
        if value is None:
            return default
        if value.lower() not in POLICIES:
            raise RecordError(f"{name}={value} is not none, quarantine or reject")
        return value.lower()

    try:
        p = policy("p", None)
    except RecordError:
        p = None
    if p is None:
        # RFC 7489 §6.6.3: a record without a valid p= but with rua= counts as p=none.
        if not rua:
            raise RecordError("no valid p= tag")
        p = "none"
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    return Record(
        p=p, sp=policy("sp", None), np=policy("np", None),
        adkim="s" if tags.get("adkim", "r").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct=min(max(pct, 0), 100), testing=tags.get("t", "n").lower() == "y",
        psd=tags.get("psd", "u").lower() if tags.get("psd", "u").lower() in "ynu" else "u",
        rua=rua, ruf=ruf)


@dataclass(frozen=True)
class Found:
    domain: str
    record: Record


async def _record_at(resolver: Resolver, domain: str) -> Record | None:
    """The DMARC record at _dmarc.domain; None when there is none (or several, or
    only invalid ones: RFC 7489 §6.6.3 discards them). TempFailure propagates."""
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except NXDomain:
        return None
    records = []
    for text in texts:
        if text.startswith("v=DMARC1"):
            try:
                records.append(parse_record(text))
            except RecordError:
                continue
    return records[0] if len(records) == 1 else None


def _walk_names(domain: str) -> list[str]:
    """The names the DMARCbis tree walk queries, longest first."""
    labels = domain.split(".")
    names = [domain]
    if len(labels) > MAX_WALK:
        labels = labels[-(MAX_WALK - 1):]
        names.append(".".join(labels))
    while len(labels) > 1:
        labels = labels[1:]
        names.append(".".join(labels))
    return names[:MAX_WALK]


async def walk(resolver: Resolver, domain: str) -> list[Found]:
    """Every record on the way from domain to the TLD, longest first."""
    out = []
    for name in _walk_names(domain):
        record = await _record_at(resolver, name)
        if record is not None:
            out.append(Found(name, record))
    return out


def organizational_domain(domain: str, found: list[Found]) -> str:
    """DMARCbis §4.10.2 on the records of a walk."""
    for f in found:
        if f.record.psd == "n":
            return f.domain
        if f.record.psd == "y":
            # The organisation is the name one label below the public suffix domain.
            if f.domain == domain:
                return domain
            return ".".join(domain.split(".")[-(f.domain.count(".") + 2):])
    return found[-1].domain if found else domain


@dataclass(frozen=True)
class DMARCResult:
    result: str                    # pass | fail | none | temperror | permerror
    from_domain: str = ""
    policy_domain: str = ""
    policy: str = "none"           # the p/sp/np that applied
    disposition: str = "none"      # what the policy asks for this message after pct / t
    dkim_aligned: str = ""         # d= of an aligned passing signature
    spf_aligned: bool = False
    reason: str = ""


class Evaluator:
    def __init__(self, resolver: Resolver, rng: random.Random | None = None):
        self.resolver = resolver
        self.rng = rng or random.Random()

    async def org_domain(self, domain: str) -> str:
        return organizational_domain(domain, await walk(self.resolver, domain))

    async def aligned(self, author: str, other: str, mode: str, author_org) -> bool:
        """RFC 7489 §3.1: strict needs the same name, relaxed the same organisation.
        author_org is awaited only when needed: the common case (d= or the MAIL FROM
        domain equal to the From domain) costs no tree walk."""
        other = other.lower().rstrip(".")
        if other == author:
            return True
        if mode == "s" or not other:
            return False
        return await self.org_domain(other) == await author_org()

    async def evaluate(self, from_domain: str, spf: SPFResult | None,
                       dkims: list[DKIMResult], spf_domain: str = "") -> DMARCResult:
        author = from_domain.lower().rstrip(".")
        walked: list[Found] | None = None

        async def full_walk() -> list[Found]:
            nonlocal walked
            if walked is None:
                walked = await walk(self.resolver, author)
            return walked

        async def author_org() -> str:
            return organizational_domain(author, await full_walk())

        try:
            record = await _record_at(self.resolver, author)
            if record is not None:
                policy_at = Found(author, record)
            else:
                found = await full_walk()
                if not found:
                    return DMARCResult("none", author, reason="no DMARC record")
                policy_at = found[0]
            record = policy_at.record
            dkim_ok = ""
            for d in dkims:
                if d.result == "pass" and await self.aligned(author, d.domain, record.adkim,
                                                             author_org):
                    dkim_ok = d.domain
                    break
            spf_ok = bool(spf and spf.result == "pass" and spf.identity == "mailfrom"
                          and await self.aligned(author, spf_domain or spf.domain,
                                                 record.aspf, author_org))
            policy = await self._policy(author, policy_at)
        except TempFailure as e:
            return DMARCResult("temperror", author, reason=str(e))
        result = DMARCResult("pass" if dkim_ok or spf_ok else "fail", author, policy_at.domain,
                             policy, "none", dkim_ok, spf_ok)
        if result.result == "pass":
            return result
        return replace(result, disposition=self._sampled(policy, record))

    async def _policy(self, author: str, found: Found) -> str:
        record = found.record
        if found.domain == author:
            return record.p
        # A policy inherited from an ancestor: np for names that do not exist
        # (DMARCbis §4.7), sp for other subdomains, else p.
        if record.np is not None:
            try:
                await self.resolver.query(author, "A")
            except NXDomain:
                return record.np
        return record.sp or record.p

    def _sampled(self, policy: str, record: Record) -> str:
        """RFC 7489 §6.6.4 pct (and DMARCbis t=y, which acts as pct=0): outside the
        sample the policy is applied one step milder."""
        sample = 0 if record.testing else record.pct
        if policy == "none" or sample >= 100 or self.rng.randrange(100) < sample:
            return policy
        return "quarantine" if policy == "reject" else "none"
