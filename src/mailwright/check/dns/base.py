"""What every DNS check shares: its options, and one way to make a finding whose
"why" line is the check's own (one line per id, with its RFC)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from ...dns import TempFailure
from ..findings import Finding, Severity


@dataclass(frozen=True)
class Options:
    # The test zone serves loopback addresses; a real domain's MX hosts must be
    # reachable from the internet, so private, loopback and reserved addresses fail
    # unless this is set (`--allow-private`: a lab, an intranet, the tests).
    allow_private: bool = False
    selectors: tuple[str, ...] = ()       # DKIM selectors; () = the common ones
    cafile: str = ""                      # CA bundle for the MTA-STS fetch ("" = system)
    https_port: int = 443                 # where MTA-STS policy hosts listen
    timeout: float = 10.0                 # one HTTPS fetch


Make = Callable[..., Finding]


def maker(why: dict[str, str]) -> Make:
    """make(id, severity, subject, seen, fix="") with the why line of `why[id]`."""
    def make(id: str, severity: Severity, subject: str, seen: str, fix: str = "") -> Finding:
        return Finding(id, severity, subject, seen, why[id], fix)
    return make


def is_public(ip: str) -> bool:
    """Reachable from the internet: not private, loopback, link-local, reserved or
    documentation space (ipaddress's is_global, IANA special-purpose registries)."""
    return ipaddress.ip_address(ip).is_global


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]").rstrip("."))
        return True
    except ValueError:
        return False


def tags(text: str) -> dict[str, str]:
    """A tag=value list (RFC 6376 §3.2, RFC 7489 §6.4, RFC 8460 §3): the first of
    each tag, names lowercased, whitespace trimmed."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out.setdefault(key.strip().lower(), value.strip())
    return out


LOOKUP_WHY = {
    "dns.lookup": "RFC 2308 §7: a lookup that times out or gets SERVFAIL leaves the check "
                  "undecided; senders and receivers defer or give temperror",
}


def lookup_failed(subject: str, what: str, error: TempFailure) -> Finding:
    """A check that could not be decided: its lookup timed out or got SERVFAIL."""
    return Finding("dns.lookup", Severity.WARN, subject, f"{what}: {error}",
                   LOOKUP_WHY["dns.lookup"],
                   "check that the name servers answer (dig +trace NAME)")
