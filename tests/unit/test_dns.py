"""The resolver against a real DNS server on loopback serving test zones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailwright.dns import MX, NXDomain, Resolver, TempFailure

from ..dnsserver import DNSServer

ZONES = Path(__file__).resolve().parent.parent / "data" / "zones"


@pytest.fixture(scope="module")
def dns_server():
    server = DNSServer()
    for path in ZONES.glob("*.zone"):
        server.add_zone_file(path)
    server.servfail.add("broken.example.test.")
    server.blackhole.add("slow.example.test.")
    yield server.start()
    server.stop()


def resolve(server, coro_fn, *args, timeout: float = 2.0):
    resolver = Resolver(["127.0.0.1"], port=server.port, timeout=timeout)
    return asyncio.run(coro_fn(resolver, *args))


def test_mx_sorted_by_preference(dns_server):
    assert resolve(dns_server, Resolver.mx, "example.test") == [
        MX(10, "mx1.example.test"), MX(20, "mx2.example.test")]


def test_no_mx_null_mx_and_nxdomain(dns_server):
    assert resolve(dns_server, Resolver.mx, "nomx.example.test") == []
    assert resolve(dns_server, Resolver.mx, "nullmx.example.test") == [MX(0, "")]
    with pytest.raises(NXDomain):
        resolve(dns_server, Resolver.mx, "missing.example.test")


def test_addresses_txt_cname_and_ptr(dns_server):
    assert sorted(resolve(dns_server, Resolver.addresses, "mx2.example.test")) == \
        ["127.0.0.3", "::1"]
    assert resolve(dns_server, Resolver.addresses, "www.example.test") == ["127.0.0.2"]
    assert resolve(dns_server, Resolver.txt, "example.test") == ["v=spf1 ip4:127.0.0.2 -all"]
    assert resolve(dns_server, Resolver.ptr, "127.0.0.2") == ["mx1.example.test"]


def test_large_answer_retried_over_tcp(dns_server):
    # 6 x 250 octets exceed the 1232-octet EDNS payload: truncated over UDP, then TCP.
    txt = resolve(dns_server, Resolver.txt, "big.example.test")
    assert sorted(txt) == [c * 250 for c in "abcdef"]
    assert dns_server.queries.count(("big.example.test.", "TXT")) == 2


def test_servfail_and_timeout_are_temporary(dns_server):
    with pytest.raises(TempFailure):
        resolve(dns_server, Resolver.mx, "broken.example.test")
    with pytest.raises(TempFailure):
        resolve(dns_server, Resolver.mx, "slow.example.test", timeout=0.5)


def test_answers_are_cached_by_ttl(dns_server):
    async def twice(resolver):
        await resolver.mx("example.test")
        before = len(dns_server.queries)
        await resolver.mx("example.test")
        return len(dns_server.queries) - before
    assert resolve(dns_server, twice) == 0
