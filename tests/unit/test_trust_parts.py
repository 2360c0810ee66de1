"""Authentication-Results rendering and stripping, the From domain DMARC uses, the
iprev and HELO checks, and sender verification against a real SMTP peer."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.controller import Controller

from mailwright.dns import Resolver
from mailwright.trust import authresults as ar
from mailwright.trust.inbound import author_domain
from mailwright.trust.iprev import check_helo, iprev
from mailwright.trust.sav import SenderVerifier

from ..conftest import free_port
from ..dnsserver import DNSServer


def test_header_renders_and_quotes():
    h = ar.header("mx.example.test", [
        ar.method("spf", "pass", smtp_mailfrom="a@b.test"),
        ar.method("dkim", "fail", "body hash (mismatch)", header_d="b.test", header_s="s 1"),
    ]).decode()
    assert h == ("Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=a@b.test;"
                 "\r\n\tdkim=fail (body hash mismatch) header.d=b.test header.s=\"s 1\"\r\n")
    assert ar.header("mx.example.test", []).endswith(b"mx.example.test;\r\n\tnone\r\n")


def test_strip_ours_keeps_others_and_body():
    msg = (b"Authentication-Results: MX.example.test; dkim=pass\r\n"
           b"Authentication-Results: (comment) mx.example.test\r\n  ; spf=pass\r\n"
           b"Authentication-Results: mx.example.test.evil; spf=pass\r\n"
           b"Subject: x\r\n\r\nAuthentication-Results: mx.example.test; in the body\r\n")
    out = ar.strip_ours(msg, "mx.example.test")
    assert out == (b"Authentication-Results: mx.example.test.evil; spf=pass\r\n"
                   b"Subject: x\r\n\r\nAuthentication-Results: mx.example.test; in the body\r\n")


@pytest.mark.parametrize("header,domain,problem", [
    (b"From: Alice <alice@Example.TEST>\r\n", "example.test", ""),
    (b"From: a@x.test, b@x.test\r\n", "x.test", ""),
    (b"From: a@x.test, b@y.test\r\n", None, "From has several domains"),
    (b"From: a@x.test\r\nFrom: b@x.test\r\n", None, "several From header fields"),
    (b"Subject: no from\r\n", None, "no From header field"),
    (b"From: undisclosed\r\n", None, "From has no address"),
])
def test_author_domain(header, domain, problem):
    fields, _ = ar.split_header(header + b"\r\nbody\r\n")
    assert author_domain(fields) == (domain, problem)


@pytest.fixture(scope="module")
def resolver():
    server = DNSServer()
    server.add_records({
        "2.0.0.127.in-addr.arpa": [("PTR", "good.test")],
        "3.0.0.127.in-addr.arpa": [("PTR", "liar.test")],
        "good.test": [("A", "127.0.0.2")],
        "liar.test": [("A", "127.0.0.99")],
        "mx.example.test": [("A", "127.0.0.1")],
        "other.test": [("A", "127.0.0.7")],
    })
    server.servfail.add("4.0.0.127.in-addr.arpa.")
    server.start()
    yield Resolver(["127.0.0.1"], port=server.port, timeout=1.0), server
    server.stop()


def test_iprev(resolver):
    r, _ = resolver
    assert asyncio.run(iprev(r, "127.0.0.2")).result == "pass"
    assert asyncio.run(iprev(r, "127.0.0.3")).result == "fail"        # PTR not confirmed
    assert asyncio.run(iprev(r, "127.0.0.5")).result == "fail"        # no PTR
    assert asyncio.run(iprev(r, "127.0.0.4")).result == "temperror"   # SERVFAIL


@pytest.mark.parametrize("helo,ip,result", [
    ("good.test", "127.0.0.2", "pass"),             # matches the rDNS name
    ("other.test", "127.0.0.7", "pass"),            # resolves to the client
    ("other.test", "127.0.0.2", "fail"),            # resolves elsewhere
    ("localhost", "127.0.0.2", "fail"),             # not a FQDN
    ("mx.example.test", "127.0.0.2", "fail"),       # claims to be us
    ("missing.test", "127.0.0.2", "fail"),          # does not exist
    ("[127.0.0.2]", "127.0.0.2", "pass"),           # the client's address literal
    ("[127.0.0.9]", "127.0.0.2", "fail"),
    ("[not-an-ip]", "127.0.0.2", "fail"),
])
def test_helo(resolver, helo, ip, result):
    r, _ = resolver
    rev = asyncio.run(iprev(r, ip))
    got = asyncio.run(check_helo(r, helo, ip, rev, {"mx.example.test"}, {"127.0.0.1"}))
    assert got.result == result, got


class _Recipients:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raise AssertionError("a callout must never send DATA")


def test_sender_verification_caches_and_limits(resolver):
    r, dns = resolver
    port = free_port("127.0.0.8")
    peer = Controller(_Recipients(), hostname="127.0.0.8", port=port)
    peer.start()
    try:
        dns.add_records({"callout.test": [("MX", (10, "mx.callout.test"))],
                         "mx.callout.test": [("A", "127.0.0.8")]})
        now = [1000.0]
        v = SenderVerifier(r, "mx.example.test", port=port,
                           rate=3, clock=lambda: now[0])

        async def run():
            return [await v.verify(a) for a in
                    ("alice@callout.test", "nobody@callout.test", "alice@callout.test",
                     "nobody@callout.test", "x@callout.test", "y@callout.test",
                     "z@callout.test")]
        results = asyncio.run(run())
        assert [x.result for x in results] == ["pass", "fail", "pass", "fail", "pass",
                                               "unknown", "unknown"]
        assert [x.cached for x in results[:4]] == [False, False, True, True]
        assert v.callouts == 3                  # the rate limit stopped the 4th and 5th
        now[0] += 3601                          # the negative entry expires first
        assert asyncio.run(v.verify("nobody@callout.test")).cached is False
        assert asyncio.run(v.verify("alice@callout.test")).cached is True
    finally:
        peer.stop()
