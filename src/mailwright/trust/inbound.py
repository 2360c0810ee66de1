"""One verdict per received message: every check run (concurrently where they are
independent), the Authentication-Results header written, and the configured
action chosen per recipient domain.

Checks run at the end of DATA, when everything they need is known; the per-
connection ones (iprev, HELO) once per connection. pyspf and dkimpy run in a
thread pool of their own (they block on DNS through the Bridge, and the RSA
and canonicalisation work would stall the event loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field

from ..config import CheckActions, Config
from ..dns import Resolver
from ..store.blobs import Content, head_of, whole
from . import arc as arc_mod
from . import authresults as ar
from . import dkim as dkim_mod
from . import spf as spf_mod
from .dmarc import DMARCResult, Evaluator
from .dnsbridge import Bridge
from .iprev import HeloResult, IprevResult, check_helo, iprev
from .sav import SAVResult, SenderVerifier

# SPF results are kept this long per (client IP, MAIL FROM, HELO): a sender's batch of
# messages costs one evaluation. Short, so a changed SPF record applies within a minute.
SPF_CACHE_SECONDS = 60.0
SPF_CACHE_SIZE = 10_000

# Strictness order of actions: the strictest failed check decides.
_SEVERITY = {"off": 0, "tag": 0, "quarantine": 1, "reject": 2}


@dataclass
class ConnectionChecks:
    """iprev and HELO results, computed once per SMTP connection."""
    iprev: IprevResult | None = None
    helo: HeloResult | None = None
    helo_name: str = ""


@dataclass(frozen=True)
class CheckRejection:
    """Why the checks refuse the message, in no protocol's syntax: an enhanced status
    code (RFC 3463; RFC 7372 for authentication failures) and a text. The delivery
    stage makes it a Rejection, which the receiving protocol answers in its own
    terms (SMTP: 550 after DATA)."""
    status: str
    text: str


@dataclass
class Verdict:
    header: bytes                               # Authentication-Results to prepend
    reject: CheckRejection | None = None        # every recipient domain refuses it
    quarantine_domains: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)   # checks that failed (for events)
    arc: arc_mod.ARCResult | None = None
    dmarc: DMARCResult | None = None


# RFC 7372 enhanced status codes for authentication failures.
_REJECTS = {
    "dmarc_reject": ("5.7.1", "rejected by the DMARC policy of {from_domain}"),
    "dmarc_quarantine": ("5.7.1", "rejected: DMARC failure for {from_domain}"),
    "spf": ("5.7.23", "SPF validation failed for {mail_from}"),
    "dkim": ("5.7.20", "no passing DKIM signature"),
    "arc": ("5.7.1", "ARC chain validation failed"),
    "iprev": ("5.7.25", "reverse DNS validation failed for {ip}"),
    "helo": ("5.7.1", "HELO {helo} rejected"),
    "sender_verify": ("5.7.1", "sender address {mail_from} rejected by its domain"),
}


class InboundChecks:
    def __init__(self, config: Config, resolver: Resolver,
                 verifier: SenderVerifier | None = None, threads: int = 16):
        self.config = config
        self.settings = config.checks
        self.authserv_id = config.checks.authserv_id or config.hostname
        self.resolver = resolver
        self.dmarc = Evaluator(resolver)
        self.verifier = verifier
        self.pool = concurrent.futures.ThreadPoolExecutor(threads, "mailwright-trust")
        self.own_ips = {listener.address for listener in config.listeners}
        self._spf_cache: OrderedDict[tuple, tuple[float, spf_mod.SPFResult]] = OrderedDict()
        self.own_names = {config.hostname}

    def _enabled(self, check: str, domains: set[str]) -> bool:
        return any(getattr(self.settings.for_domain(d), check) != "off" for d in domains)

    async def connection(self, state: ConnectionChecks, ip: str, helo: str,
                         domains: set[str]) -> ConnectionChecks:
        if state.iprev is None and (self._enabled("iprev", domains)
                                    or self._enabled("helo", domains)):
            state.iprev = await iprev(self.resolver, ip)
        if state.helo_name != helo and self._enabled("helo", domains):
            state.helo = await check_helo(self.resolver, helo, ip, state.iprev,
                                          self.own_names, self.own_ips)
            state.helo_name = helo
        return state

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def check(self, conn: ConnectionChecks, ip: str, helo: str, mail_from: str,
                    content: Content, domains: set[str]) -> Verdict:
        """domains: the local domains of the recipients. A spooled message is read
        whole only to verify signatures, in the thread that verifies them."""
        bridge = Bridge(self.resolver, asyncio.get_running_loop())
        fields, _ = ar.split_header(head_of(content))
        names = {f.split(b":", 1)[0].strip().lower() for f in fields}
        from_domain, from_problem = author_domain(fields)
        await self.connection(conn, ip, helo, domains)

        need_spf = any(self._enabled(c, domains) for c in ("spf", "dmarc_reject",
                                                            "dmarc_quarantine"))
        spf, dkims, arc, sav = await _together(
            self._spf(bridge, ip, mail_from, helo) if need_spf else None,
            self._in_thread(_on_whole, dkim_mod.verify, bridge, content)
            if b"dkim-signature" in names else None,
            # ARC is validated whenever a chain is present: sealing a forward records it.
            self._in_thread(_on_whole, arc_mod.verify, bridge, content)
            if b"arc-seal" in names else None,
            self.verifier.verify(mail_from)
            if mail_from and self.verifier and self._enabled("sender_verify", domains)
            else None)
        dkims = dkims or []
        arc = arc or arc_mod.ARCResult("none")
        dmarc = None
        if from_domain and any(self._enabled(c, domains) for c in ("dmarc_reject",
                                                                  "dmarc_quarantine")):
            dmarc = await self.dmarc.evaluate(from_domain, spf, dkims)
        elif from_problem:
            dmarc = DMARCResult("permerror", reason=from_problem)

        failed = _failures(conn, spf, dkims, arc, dmarc, sav)
        verdict = Verdict(self._header(conn, spf, dkims, arc, dmarc, sav, mail_from),
                          failed=failed, arc=arc, dmarc=dmarc)
        self._decide(verdict, domains, dict(
            from_domain=from_domain or "", mail_from=mail_from or "<>", ip=ip, helo=helo))
        return verdict

    async def _spf(self, bridge: Bridge, ip: str, mail_from: str, helo: str
                   ) -> spf_mod.SPFResult:
        key = (ip, mail_from.lower(), helo.lower())
        now = time.monotonic()
        hit = self._spf_cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        result = await self._in_thread(spf_mod.check, bridge, ip, mail_from, helo,
                                       self.config.hostname)
        if result.result != "temperror":
            self._spf_cache[key] = (now + SPF_CACHE_SECONDS, result)
            self._spf_cache.move_to_end(key)
            while len(self._spf_cache) > SPF_CACHE_SIZE:
                self._spf_cache.popitem(last=False)
        return result

    def _decide(self, verdict: Verdict, domains: set[str], facts: dict) -> None:
        worst: dict[str, tuple[int, str]] = {}
        for domain in domains:
            actions: CheckActions = self.settings.for_domain(domain)
            severity, check = 0, ""
            for name in verdict.failed:
                s = _SEVERITY[getattr(actions, name)]
                if s > severity:
                    severity, check = s, name
            worst[domain] = (severity, check)
        if domains and all(s == 2 for s, _ in worst.values()):
            check = next(iter(worst.values()))[1]
            status, text = _REJECTS[check]
            verdict.reject = CheckRejection(status, text.format(**facts))
            return
        # Mixed recipients cannot get different SMTP replies after DATA: those whose
        # domain would reject get the message in Junk (nothing is lost).
        verdict.quarantine_domains = {d for d, (s, _) in worst.items() if s >= 1}

    def _header(self, conn: ConnectionChecks, spf, dkims, arc, dmarc, sav,
                mail_from: str) -> bytes:
        results = []
        if conn.iprev is not None:
            i = conn.iprev
            results.append(ar.method("iprev", i.result, ",".join(i.names[:1]) or i.reason,
                                     policy_iprev=i.ip))
        if spf is not None:
            prop = {"smtp_mailfrom": mail_from} if mail_from else {"smtp_helo": spf.domain}
            results.append(ar.method("spf", spf.result, spf.explanation, **prop))
        for d in dkims:
            results.append(ar.method("dkim", d.result, d.reason, header_d=d.domain,
                                     header_s=d.selector, header_a=d.algorithm,
                                     header_b=d.b))
        if arc is not None:
            results.append(ar.method("arc", arc.result, arc.reason))
        if dmarc is not None:
            note = f"p={dmarc.policy} dis={dmarc.disposition.upper()}" \
                if dmarc.result in ("pass", "fail") else dmarc.reason
            results.append(ar.method("dmarc", dmarc.result, note,
                                     header_from=dmarc.from_domain))
        if conn.helo is not None:
            results.append(ar.method("x-helo", conn.helo.result, conn.helo.reason,
                                     smtp_helo=conn.helo.helo))
        if sav is not None:
            results.append(ar.method("x-sender-verify", sav.result, sav.reply,
                                     smtp_mailfrom=sav.address))
        return ar.header(self.authserv_id, results)


def _failures(conn: ConnectionChecks, spf, dkims, arc, dmarc: DMARCResult | None,
              sav: SAVResult | None) -> list[str]:
    failed = []
    if dmarc is not None and dmarc.result == "fail":
        if dmarc.disposition == "reject":
            failed.append("dmarc_reject")
        elif dmarc.disposition == "quarantine":
            failed.append("dmarc_quarantine")
    if spf is not None and spf.result == "fail":
        failed.append("spf")
    if dkims and not any(d.result == "pass" for d in dkims):
        failed.append("dkim")
    if arc is not None and arc.result == "fail":
        failed.append("arc")
    if conn.iprev is not None and conn.iprev.result == "fail":
        failed.append("iprev")
    if conn.helo is not None and conn.helo.result == "fail":
        failed.append("helo")
    if sav is not None and sav.result == "fail":
        failed.append("sender_verify")
    return failed


def _on_whole(verify, bridge: Bridge, content: Content):
    return verify(bridge, whole(content))


def author_domain(fields: list[bytes]) -> tuple[str | None, str]:
    """The RFC5322.From domain DMARC is about (RFC 7489 §6.6.1): exactly one From
    field with one address."""
    values = [f.split(b":", 1)[1] for f in fields
              if f.split(b":", 1)[0].strip().lower() == b"from"]
    if not values:
        return None, "no From header field"
    if len(values) > 1:
        return None, "several From header fields"
    text = values[0].decode("utf-8", "replace").replace("\r\n", "")
    addresses = [a for _, a in email.utils.getaddresses([text]) if a]
    domains = {a.rpartition("@")[2].lower().rstrip(".") for a in addresses if "@" in a}
    if len(domains) != 1:
        return None, "From has no address" if not domains else "From has several domains"
    return domains.pop(), ""


async def _together(*work: Coroutine | None) -> list:
    """The results of the checks to run (None for one not run), concurrently when
    there are several: one alone (most mail: SPF, often answered from its cache) is
    awaited as it is, without the task per coroutine gather() would create."""
    running = [w for w in work if w is not None]
    if len(running) > 1:
        results = iter(await asyncio.gather(*running))
    else:
        results = iter([await running[0]] if running else [])
    return [None if w is None else next(results) for w in work]
