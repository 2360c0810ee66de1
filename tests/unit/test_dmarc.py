"""DMARC record parsing, the DMARCbis tree walk, alignment and disposition, with
records served by the loopback test DNS server."""

from __future__ import annotations

import asyncio
import random

import pytest

from mailwright.dns import Resolver
from mailwright.trust.dkim import DKIMResult
from mailwright.trust.dmarc import Evaluator, RecordError, _walk_names, parse_record
from mailwright.trust.spf import SPFResult

from ..dnsserver import DNSServer


def test_parse_record():
    r = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50; "
                     "rua=mailto:a@x.test,mailto:b@x.test; future=1")
    assert (r.p, r.sp, r.adkim, r.aspf, r.pct) == ("reject", "quarantine", "s", "r", 50)
    assert r.rua == ("mailto:a@x.test", "mailto:b@x.test")
    # RFC 7489 §6.6.3: no valid p= but rua= present: treated as p=none.
    assert parse_record("v=DMARC1; p=bogus; rua=mailto:a@x.test").p == "none"
    for bad in ("p=reject; v=DMARC1", "v=DMARC1", "v=DMARC1; p=bogus", "v=DMARC2; p=none",
                "v=DMARC1; junk"):
        with pytest.raises(RecordError):
            parse_record(bad)


def test_walk_names_are_bounded():
    assert _walk_names("a.b.example.com") == ["a.b.example.com", "b.example.com",
                                              "example.com", "com"]
    long = ".".join(f"l{i}" for i in range(12)) + ".example.com"
    names = _walk_names(long)
    assert len(names) == 8 and names[1].count(".") == 6      # jumped to 7 labels


@pytest.fixture(scope="module")
def resolver():
    server = DNSServer()
    server.add_records({
        "_dmarc.org.test": [("TXT", "v=DMARC1; p=reject; sp=quarantine; np=reject")],
        "mail.org.test": [("A", "127.0.0.9")],
        "_dmarc.psd.test": [("TXT", "v=DMARC1; p=none; psd=y")],
        "_dmarc.tenant.psd.test": [("TXT", "v=DMARC1; p=reject")],
        "_dmarc.half.test": [("TXT", "v=DMARC1; p=reject; pct=0")],
        "_dmarc.testing.test": [("TXT", "v=DMARC1; p=reject; t=y")],
        "_dmarc.strict.test": [("TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")],
        "_dmarc.test": [("TXT", "v=DMARC1; p=none; psd=y")],
        "_dmarc.com.test": [],
    })
    server.start()
    yield Resolver(["127.0.0.1"], port=server.port, timeout=1.0)
    server.stop()


def _spf(result: str, domain: str) -> SPFResult:
    return SPFResult(result, "mailfrom", domain)


async def _eval(resolver, author, spf=None, dkims=()):
    return await Evaluator(resolver, random.Random(1)).evaluate(author, spf, list(dkims))


CASES = [
    # Aligned DKIM from a subdomain of the organisation (relaxed): pass.
    ("org.test", None, [DKIMResult("pass", "mail.org.test")], "pass", "reject", "none"),
    # SPF passing for the same organisation: pass.
    ("org.test", _spf("pass", "bounce.org.test"), [], "pass", "reject", "none"),
    # DKIM passing for an unrelated domain does not count.
    ("org.test", None, [DKIMResult("pass", "other.test")], "fail", "reject", "reject"),
    # An existing subdomain inherits sp=, a non-existent one np= (DMARCbis).
    ("mail.org.test", None, [], "fail", "quarantine", "quarantine"),
    ("ghost.org.test", None, [], "fail", "reject", "reject"),
    # psd=y: the organisation is the name below the public suffix domain.
    ("x.tenant.psd.test", None, [DKIMResult("pass", "tenant.psd.test")], "pass", "reject",
     "none"),
    ("tenant.psd.test", None, [DKIMResult("pass", "other.psd.test")], "fail", "reject",
     "reject"),
    # pct=0 and t=y: the policy applied one step milder.
    ("half.test", None, [], "fail", "reject", "quarantine"),
    ("testing.test", None, [], "fail", "reject", "quarantine"),
    # Strict alignment wants the very name.
    ("strict.test", _spf("pass", "sub.strict.test"), [DKIMResult("pass", "sub.strict.test")],
     "fail", "reject", "reject"),
    ("strict.test", None, [DKIMResult("pass", "strict.test")], "pass", "reject", "none"),
    # No record anywhere below the PSD record with p=none.
    ("nothing.example.test", None, [], "fail", "none", "none"),
]


@pytest.mark.parametrize("author,spf,dkims,result,policy,disposition", CASES)
def test_evaluate(resolver, author, spf, dkims, result, policy, disposition):
    got = asyncio.run(_eval(resolver, author, spf, dkims))
    assert (got.result, got.policy, got.disposition) == (result, policy, disposition), got


def test_no_record_is_none_and_dns_failure_is_temperror():
    server = DNSServer()
    server.add_records({"x.none.test": [("A", "127.0.0.1")]})
    server.servfail.add("_dmarc.broken.test.")
    server.start()
    resolver = Resolver(["127.0.0.1"], port=server.port, timeout=1.0)
    assert asyncio.run(_eval(resolver, "x.none.test")).result == "none"
    assert asyncio.run(_eval(resolver, "broken.test")).result == "temperror"
    server.stop()
