"""check/dns/: every planted flaw of the loopback test zone (tests/checkzone.py) is
found under its id, and what is right passes. Real DNS over loopback, a real HTTPS
policy server with a test CA."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.check.dns import Options, check_domain, check_server_host
from mailwright.check.dns.dkim import check_dkim
from mailwright.check.dns.dmarc import check_dmarc, organizational_domain
from mailwright.check.dns.spf import check_spf
from mailwright.check.findings import Severity
from mailwright.dns import Resolver

from ..checkzone import CheckWorld


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = CheckWorld(tmp_path_factory.mktemp("check"))
    yield w
    w.stop()


def _resolver(world) -> Resolver:
    return Resolver(["127.0.0.1"], port=world.dns.port, timeout=2)


def _options(world, **kw) -> Options:
    return Options(allow_private=True, cafile=str(world.ca.path),
                   https_port=world.https.port, timeout=5, **kw)


def graded(findings) -> dict[str, set[str]]:
    """{id: {severity, ...}}"""
    out: dict[str, set[str]] = {}
    for f in findings:
        out.setdefault(f.id, set()).add(f.severity.label)
    return out


def run(coro):
    return asyncio.run(coro)


def test_bad_domain_every_flaw_found(world):
    result = run(check_domain(_resolver(world), "bad.test",
                              _options(world, selectors=("weak", "gone", "junk", "absent"))))
    g = graded(result.findings)
    assert result.mx_hosts == ["alias.bad.test", "127.0.0.9", "mx.bad.test"]
    assert g["dns.mx.present"] == {"pass"}
    assert "fail" in g["dns.mx.cname"] and "fail" in g["dns.mx.ip-literal"]
    assert "fail" in g["dns.ptr.fcrdns"] and "warn" in g["dns.ptr.match"]
    assert g["dns.host.public"] == {"info"}               # loopback, allowed here
    assert g["dns.spf.lookups"] == {"fail"} and g["dns.spf.void"] == {"fail"}
    assert g["dns.spf.include"] == {"fail"} and g["dns.spf.all"] == {"fail"}
    assert g["dns.spf.syntax"] == {"pass"}
    assert g["dns.dkim.strength"] == {"warn"} and g["dns.dkim.testing"] == {"warn"}
    assert g["dns.dkim.revoked"] == {"info"} and g["dns.dkim.syntax"] == {"fail"}
    assert "fail" in g["dns.dkim.key"]                   # the absent selector asked for
    assert g["dns.dmarc.record"] == {"fail"}
    assert g["dns.mta-sts.record"] == {"pass"} and g["dns.mta-sts.policy"] == {"pass"}
    assert g["dns.mta-sts.mx"] == {"fail"} and g["dns.mta-sts.max-age"] == {"warn"}
    assert g["dns.tls-rpt.record"] == {"fail"}
    assert g["dns.dnssec.status"] == {"info"} and g["dns.bimi.record"] == {"info"}
    by_id = {f.id: f for f in result.findings}
    lookups = by_id["dns.spf.lookups"]
    assert lookups.seen.startswith("12 DNS-querying terms") and "§4.6.4" in lookups.why
    assert lookups.fix and lookups.subject == "bad.test"
    assert "nospf.bad.test" in by_id["dns.spf.include"].seen
    assert "mx.elsewhere.test" in by_id["dns.mta-sts.mx"].seen
    assert "alias.bad.test is a CNAME for mx.bad.test" in \
        [f.seen for f in result.findings if f.id == "dns.mx.cname"]
    for f in result.findings:                 # every finding explains itself
        assert f.why and "RFC" in f.why or f.id == "dns.bimi.record", f
        assert f.fix or f.severity in (Severity.PASS, Severity.INFO), f


def test_private_addresses_fail_unless_allowed(world):
    strict = Options(cafile=str(world.ca.path), https_port=world.https.port)
    g = graded(run(check_server_host(_resolver(world), "mx.bad.test", strict)))
    assert g["dns.host.public"] == {"fail"} and g["dns.host.address"] == {"pass"}
    g = graded(run(check_server_host(_resolver(world), "127.0.0.11", strict)))
    assert g["dns.host.public"] == {"fail"} and "dns.ptr.match" not in g
    g = graded(run(check_server_host(_resolver(world), "nothing.bad.test", strict)))
    assert g == {"dns.host.address": {"fail"}}


@pytest.mark.parametrize("domain, expected", [
    ("two.bad.test", {"dns.spf.record": {"fail"}}),
    ("void.bad.test", {"dns.spf.void": {"fail"}, "dns.spf.lookups": {"pass"},
                       "dns.spf.all": {"pass"}}),
    ("nomx.bad.test", {"dns.spf.record": {"warn"}}),
])
def test_spf_cases(world, domain, expected):
    g = graded(run(check_spf(_resolver(world), domain)))
    assert {k: g.get(k) for k in expected} == expected


@pytest.mark.parametrize("domain, expected", [
    ("nullmx.bad.test", {"dns.mx.null": {"info"}}),
    ("mixed.bad.test", {"dns.mx.null": {"fail"}}),
    ("nomx.bad.test", {"dns.mx.present": {"warn"}}),
    ("nowhere.bad.test", {"dns.mx.present": {"fail"}}),
])
def test_mx_cases(world, domain, expected):
    result = run(check_domain(_resolver(world), domain, _options(world)))
    g = graded(result.findings)
    assert {k: g.get(k) for k in expected} == expected
    assert result.mx_hosts == (["nomx.bad.test"] if domain.startswith("nomx") else [])


def test_dmarc_reports_and_policy(world):
    g = graded(run(check_dmarc(_resolver(world), "report.bad.test")))
    assert g["dns.dmarc.policy"] == {"warn"} and g["dns.dmarc.pct"] == {"warn"}
    assert g["dns.dmarc.external"] == {"warn", "pass"}     # elsewhere.test / ok.test
    assert g["dns.dmarc.ruf"] == {"fail"} and g["dns.dmarc.rua"] == {"pass"}
    assert g["dns.dmarc.alignment"] == {"info"}
    # A subdomain without its own record inherits the organisational domain's (none).
    g = graded(run(check_dmarc(_resolver(world), "deep.sub.bad.test")))
    assert g == {"dns.dmarc.record": {"fail"}}
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"


def test_dkim_common_selectors(world):
    g = graded(run(check_dkim(_resolver(world), "bad.test")))
    assert g == {"dns.dkim.key": {"warn"}}                 # none of the common names


def test_a_failing_lookup_is_undecided_not_a_verdict(world):
    """SERVFAIL on one address's PTR: that check is a dns.lookup warning, the host's
    other checks still run; SERVFAIL on the MX lookup leaves the rest of the domain
    checked."""
    world.dns.servfail.add("11.0.0.127.in-addr.arpa.")
    world.dns.servfail.add("flaky.bad.test.")
    try:
        g = graded(run(check_server_host(_resolver(world), "mx.bad.test", _options(world))))
        assert g == {"dns.host.address": {"pass"}, "dns.host.public": {"info"},
                     "dns.lookup": {"warn"}}
        result = run(check_domain(_resolver(world), "flaky.bad.test", _options(world)))
        g = graded(result.findings)
        assert g["dns.lookup"] == {"warn"} and "dns.spf.record" not in g
        assert result.mx_hosts == []
    finally:
        world.dns.servfail.clear()


def _rsa_txt(bits: int) -> str:
    """An RSA public key of any size (cryptography will not generate one under 1024
    bits, but a public key is only a modulus and an exponent)."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 1).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


EDGE = """$TTL 60
@ IN SOA ns.edge.test. h.edge.test. 1 3600 600 86400 60
redir      IN TXT "v=spf1 redirect=target.edge.test"
target     IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"
redirnone  IN TXT "v=spf1 redirect=none.edge.test"
loop1      IN TXT "v=spf1 include:loop2.edge.test -all"
loop2      IN TXT "v=spf1 include:loop1.edge.test -all"
syntax     IN TXT "v=spf1 ip4:1.2.3.444 foo:bar -all"
macro      IN TXT "v=spf1 exists:%{i}.x.edge.test -all"
ptr        IN TXT "v=spf1 ptr -all"
ptr        IN MX 10 mx.edge.test.
neutral    IN TXT "v=spf1 ip4:192.0.2.1 ?all"
noall      IN TXT "v=spf1 ip4:192.0.2.1"
ten        IN TXT ("v=spf1 a:mx.edge.test a:mx.edge.test a:mx.edge.test a:mx.edge.test "
                   "a:mx.edge.test a:mx.edge.test a:mx.edge.test a:mx.edge.test "
                   "a:mx.edge.test a:mx.edge.test -all")
mx         IN A 192.0.2.25
ed._domainkey   IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
dsa._domainkey  IN TXT "v=DKIM1; k=dsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
two._domainkey  IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
two._domainkey  IN TXT "v=DKIM1; k=ed25519; p=22qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
_mta-sts   IN TXT "v=STSv1; id=2026-12-04"
"""


@pytest.fixture(scope="module")
def edge(world):
    world.dns.add_zone("edge.test", EDGE + f'tiny._domainkey IN TXT "{_rsa_txt(512)}"\n')
    return world


@pytest.mark.parametrize("domain, expected", [
    ("redir.edge.test", {"dns.spf.all": {"info"}, "dns.spf.lookups": {"pass"}}),
    ("redirnone.edge.test", {"dns.spf.include": {"fail"}, "dns.spf.all": None}),
    ("loop1.edge.test", {"dns.spf.syntax": {"fail"}}),
    ("syntax.edge.test", {"dns.spf.syntax": {"fail"}}),
    ("macro.edge.test", {"dns.spf.lookups": {"pass"}, "dns.spf.void": {"pass"}}),
    ("ptr.edge.test", {"dns.spf.ptr": {"warn"}}),
    ("neutral.edge.test", {"dns.spf.all": {"warn"}}),
    ("noall.edge.test", {"dns.spf.all": {"warn"}}),
    ("ten.edge.test", {"dns.spf.lookups": {"warn"}, "dns.spf.void": {"pass"}}),
])
def test_spf_edges(edge, domain, expected):
    findings = run(check_spf(_resolver(edge), domain))
    g = graded(findings)
    assert {k: g.get(k) for k in expected} == expected, findings


def test_spf_loop_and_syntax_are_named(edge):
    seen = {f.id: f.seen for f in run(check_spf(_resolver(edge), "loop1.edge.test"))}
    assert "loops back to loop1.edge.test" in seen["dns.spf.syntax"]
    seen = {f.id: f.seen for f in run(check_spf(_resolver(edge), "syntax.edge.test"))}
    assert "ip4:1.2.3.444" in seen["dns.spf.syntax"] and "foo:bar" in seen["dns.spf.syntax"]


def test_dkim_edges(edge):
    g = graded(run(check_dkim(_resolver(edge), "edge.test",
                              ("ed", "dsa", "two", "tiny"))))
    assert g["dns.dkim.key"] == {"pass", "fail"}            # ed / two
    assert g["dns.dkim.syntax"] == {"fail"}                 # k=dsa
    assert g["dns.dkim.strength"] == {"pass", "fail"}       # Ed25519 / RSA 512


def test_mta_sts_policy_needs_a_trusted_certificate(world):
    from mailwright.check.dns.mtasts import check_mta_sts
    untrusting = Options(allow_private=True, https_port=world.https.port, timeout=5)
    findings = run(check_mta_sts(_resolver(world), "bad.test", ["mx.bad.test"], untrusting))
    [policy] = [f for f in findings if f.id == "dns.mta-sts.policy"]
    assert policy.severity is Severity.FAIL and "certificate not valid" in policy.seen


def test_mta_sts_id_syntax(edge):
    from mailwright.check.dns.mtasts import check_mta_sts
    [record] = run(check_mta_sts(_resolver(edge), "edge.test", [], _options(edge)))
    assert record.id == "dns.mta-sts.record" and record.severity is Severity.FAIL
    assert "id=2026-12-04" in record.seen
