"""SPF (RFC 7208) for the MAIL FROM and HELO identities, by pyspf.

pyspf looks names up through a module-level function; we replace it once with
a dispatcher that finds the calling thread's Bridge, so concurrent checks in
several worker threads each use the resolver they were given.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import spf as pyspf

from .dnsbridge import Bridge, LookupFailed

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
# RFC 7208 §4.6.4: at most 10 DNS-querying terms; §11.1: bound the total time.
QUERY_TIME = 20.0

_local = threading.local()


@dataclass(frozen=True)
class SPFResult:
    result: str                 # one of RESULTS (RFC 7208 §2.6)
    identity: str               # "mailfrom" or "helo"
    domain: str                 # the domain checked
    explanation: str = ""       # RFC 7208 §6.2 exp= text, or why it is an error


def _lookup(name: str, qtype: str, strict=True, timeout=None) -> list:
    """pyspf's DNSLookup contract: [((name, qtype), value), ...]; [] for no data."""
    bridge: Bridge = _local.bridge
    try:
        records = bridge.records(name, qtype)
    except LookupFailed as e:
        raise pyspf.TempError(f"DNS {e}") from None
    out = []
    for r in records:
        if qtype in ("A", "AAAA"):
            value = r.address
        elif qtype == "MX":
            value = (r.preference, r.exchange.to_text(omit_final_dot=True))
        elif qtype == "PTR":
            value = r.target.to_text(omit_final_dot=True)
        elif qtype in ("TXT", "SPF"):
            value = tuple(r.strings)
        else:
            continue
        out.append(((name, qtype), value))
    return out


pyspf.DNSLookup = _lookup


class _Query(pyspf.query):
    def validated_ptrs(self):
        """RFC 7208 §5.5: a DNS error on the PTR lookup makes "ptr" not match, and one
        on a name's A/AAAA lookup skips that name; neither is a temperror. At most
        10 names are looked at."""
        try:
            names = self.dns_ptr(self.i)[:pyspf.MAX_PTR]
        except pyspf.TempError:
            return []
        out = []
        for name in names:
            try:
                addresses = self.dns_a(name, self.A)
            except pyspf.TempError:
                continue
            if self.cidrmatch(addresses, self.cidrmax):
                out.append(name)
        return out


def check(bridge: Bridge, ip: str, mail_from: str, helo: str,
          receiver: str = "") -> SPFResult:
    """Check MAIL FROM (or, for the null reverse-path, postmaster@HELO as RFC 7208 §2.4
    says). Blocking: call from a worker thread."""
    _local.bridge = bridge
    try:
        q = _Query(i=ip, s=mail_from, h=helo, receiver=receiver or "unknown",
                        querytime=QUERY_TIME)
        result, _code, explanation = q.check()
    except Exception as e:        # pyspf must never break a delivery
        return SPFResult("temperror", "mailfrom", _domain(mail_from, helo), f"internal: {e}")
    finally:
        _local.bridge = None
    identity = "mailfrom" if mail_from else "helo"
    return SPFResult(result, identity, _domain(mail_from, helo),
                     explanation if result in ("fail", "permerror", "temperror") else "")


def check_helo(bridge: Bridge, ip: str, helo: str, receiver: str = "") -> SPFResult:
    """RFC 7208 §2.3: the HELO identity on its own."""
    res = check(bridge, ip, "", helo, receiver)
    return SPFResult(res.result, "helo", helo, res.explanation)


def _domain(mail_from: str, helo: str) -> str:
    return mail_from.rpartition("@")[2].lower() if mail_from else helo.lower()
