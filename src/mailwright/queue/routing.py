"""Where mail for a domain goes: MX hosts in preference order (RFC 5321 §5.1)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..dns import NXDomain, Resolver


class PermanentRouteError(Exception):
    """The domain cannot receive mail: bounce now with this enhanced status."""

    def __init__(self, status: str, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class Hop:
    host: str
    addresses: tuple[str, ...]


async def route(resolver: Resolver, domain: str, rng: random.Random | None = None) -> list[Hop]:
    """MX hosts by preference, shuffled among equals (RFC 5321 §5.1), each with its
    addresses. No MX: the domain itself is the host (implicit MX). A null MX (RFC 7505
    §3) or a domain that does not exist is permanent; DNS trouble raises TempFailure."""
    rng = rng or random
    try:
        mxs = await resolver.mx(domain)
    except NXDomain:
        raise PermanentRouteError("5.1.2", f"domain {domain} does not exist") from None
    if len(mxs) == 1 and mxs[0].host == "":
        raise PermanentRouteError("5.1.10", f"domain {domain} accepts no mail (null MX)")
    if not mxs:
        hosts = [domain]
    else:
        by_pref: dict[int, list[str]] = {}
        for mx in mxs:
            by_pref.setdefault(mx.preference, []).append(mx.host)
        hosts = []
        for pref in sorted(by_pref):
            group = by_pref[pref]
            rng.shuffle(group)
            hosts += group
    hops = []
    for host in hosts:
        try:
            addresses = await resolver.addresses(host)
        except NXDomain:
            continue
        if addresses:
            hops.append(Hop(host, tuple(addresses)))
    if not hops:
        if not mxs:
            raise PermanentRouteError("5.1.2", f"domain {domain} has no MX and no address")
        raise PermanentRouteError("5.4.4", f"no MX host of {domain} has an address")
    return hops
