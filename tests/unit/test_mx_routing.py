"""mx/routing.py: the MX lookup (RFC 5321 §5.1, RFC 7505 null MX) through the loopback
DNS, and the route a destination gets ([[transports]], relayhost, MX hosts)."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from mailwright.config import RelayhostSettings, TransportSettings
from mailwright.dns import Resolver, TempFailure
from mailwright.events.log import EventLog
from mailwright.mx.connection import MX_TRANSPORT, Transport
from mailwright.mx.routing import NullMX, PermanentRouteError, Router, exchangers, lookup

from ..conftest import loopback_dns
from .session_harness import make_config
from .test_queue import PEER_ZONE


@pytest.fixture(scope="module")
def resolver():
    server = loopback_dns()
    server.add_zone("peer.test", PEER_ZONE)
    return Resolver(["127.0.0.1"], port=server.port, timeout=2)


def router(resolver, **config) -> Router:
    cfg = make_config()
    cfg = dataclasses.replace(cfg, queue=dataclasses.replace(cfg.queue, port=2525, dane=False,
                                                             mta_sts=False), **config)
    return Router(cfg, resolver, EventLog(None))


# --- the MX lookup -------------------------------------------------------------------
def test_lookup_mx_order_and_shuffle(resolver):
    seen = set()
    for seed in range(20):
        hops = asyncio.run(lookup(resolver, "peer.test", random.Random(seed)))
        assert hops[-1].host == "backup.peer.test"
        seen.add(tuple(h.host for h in hops[:2]))
    assert seen == {("mx1.peer.test", "mx2.peer.test"), ("mx2.peer.test", "mx1.peer.test")}


def test_lookup_implicit_null_and_missing(resolver):
    hops = asyncio.run(lookup(resolver, "implicit.peer.test"))
    assert [(h.host, h.addresses) for h in hops] == [("implicit.peer.test", ("127.0.0.1",))]
    for domain, status in (("nullmx.peer.test", "5.1.10"), ("nope.peer.test", "5.1.2"),
                           ("dangling.peer.test", "5.4.4")):
        with pytest.raises(PermanentRouteError) as e:
            asyncio.run(lookup(resolver, domain))
        assert e.value.status == status


def test_exchangers_are_names_before_any_address_lookup(resolver):
    # RFC 5321 §5.1: no MX -> the domain itself; RFC 7505 §3: a null MX says "no mail".
    assert asyncio.run(exchangers(resolver, "implicit.peer.test")) == ["implicit.peer.test"]
    assert asyncio.run(exchangers(resolver, "dangling.peer.test")) == ["nowhere.peer.test"]
    with pytest.raises(NullMX):
        asyncio.run(exchangers(resolver, "nullmx.peer.test"))


# --- the route of a destination --------------------------------------------------------
def test_mx_hosts_by_default(resolver):
    route = asyncio.run(router(resolver).route("peer.test"))
    assert route.port == 2525
    assert [h.host for h, _ in route.hops][-1] == "backup.peer.test"
    assert {t for _, t in route.hops} == {MX_TRANSPORT}


def test_a_transports_entry_takes_its_domain_elsewhere(resolver):
    r = router(resolver, transports=(TransportSettings("peer.test", "127.0.0.9", 2626, "none"),))
    route = asyncio.run(r.route("peer.test"))
    assert [(h.host, h.addresses, t) for h, t in route.hops] == \
        [("127.0.0.9", ("127.0.0.9",), Transport("none"))]
    assert route.port == 2626
    # Other domains still go by MX.
    assert asyncio.run(r.route("implicit.peer.test")).port == 2525


def test_the_relayhost_carries_everything_else(resolver):
    relay = RelayhostSettings(host="mx1.peer.test", port=587, tls="starttls", username="u")
    r = router(resolver, relayhost=relay, relayhost_password="secret")
    for domain in ("peer.test", "nullmx.peer.test", "nope.peer.test"):
        route = asyncio.run(r.route(domain))
        assert [(h.host, t) for h, t in route.hops] == \
            [("mx1.peer.test", Transport("starttls", "u", "secret", True))]
        assert route.port == 587


def test_a_configured_host_without_address_is_temporary(resolver):
    r = router(resolver, relayhost=RelayhostSettings(host="gone.peer.test"))
    with pytest.raises(TempFailure):
        asyncio.run(r.route("peer.test"))
