"""`mailwright dkim` and `mailwright dns records|check`: the records printed are the
records checked. They are loaded into a loopback DNS server of this test's own, and
`dns check` resolves them through the configured resolver."""

from __future__ import annotations

from ..conftest import MailServer
from ..dnsserver import DNSServer


def _server(tmp_path, dns: DNSServer) -> MailServer:
    return MailServer(tmp_path, hostname="mx.rec.test", dns_port=dns.port)


def _check(srv) -> tuple[int, dict[str, str]]:
    res = srv.cli("dns", "check", "rec.test", check=False)
    lines = {}
    for line in res.stdout.splitlines():
        status, rest = line.split(None, 1)
        what = rest.split("  ")[0].strip()
        lines[what] = status
    return res.returncode, lines


def test_records_then_check(tmp_path):
    dns = DNSServer()
    dns.add_records({})              # an empty root zone: every name is NXDOMAIN
    dns.start()
    srv = _server(tmp_path, dns)
    srv.cli("domain", "add", "rec.test")
    out = srv.cli("dkim", "generate", "rec.test", "--selector", "k1").stdout
    assert "k1-rsa._domainkey.rec.test." in out and "k=ed25519" in out
    records = srv.cli("dns", "records", "rec.test").stdout
    zone = [line for line in records.splitlines() if line and not line.startswith(";")]
    # SRV: the client listeners (RFC 6186); no http listener, so no autoconfig names.
    assert {line.split("\t")[3] for line in zone} == {"MX", "TXT", "SRV"}
    port = srv.ports["imaps"]
    assert f"_imaps._tcp.rec.test.\t3600\tIN\tSRV\t0 1 {port} mx.rec.test." in zone
    assert not any(line.startswith(("autoconfig.", "autodiscover.")) for line in zone)
    assert any(line.startswith("_dmarc.rec.test.") for line in zone)
    assert "mta-sts.txt" in records and "mx: mx.rec.test" in records

    # Nothing published yet.
    code, lines = _check(srv)
    assert code == 1 and lines["MX"] == "missing" and lines["DKIM k1-rsa"] == "missing"
    # The client discovery records are optional: their absence is only "info".
    assert lines["SRV _submissions._tcp.rec.test"] == "info"
    assert {v for k, v in lines.items() if k.startswith("SRV ")} == {"info"}

    # Everything published as printed, plus the host's A and PTR records.
    dns.add_zone(".", "\n".join(zone) + "\nmx.rec.test. 60 IN A 127.0.0.6\n"
                 "6.0.0.127.in-addr.arpa. 60 IN PTR mx.rec.test.\n")
    code, lines = _check(srv)
    assert {k: v for k, v in lines.items() if v != "found"} == {"MTA-STS": "wrong"}, lines
    assert code == 1          # the policy file is not served over HTTPS here

    # Key rotation: a second key set is published only once activated by the admin.
    out = srv.cli("dkim", "generate", "rec.test", "--selector", "k2").stdout
    assert "mailwright dkim activate rec.test k2" in out
    code, lines = _check(srv)
    assert lines["DKIM k1-rsa"] == "found" and lines["DKIM k2-rsa"] == "missing"
    res = srv.cli("dkim", "retire", "rec.test", "k1", check=False)
    assert res.returncode == 1 and "activate another key set first" in res.stderr
    srv.cli("dkim", "activate", "rec.test", "k2")
    srv.cli("dkim", "retire", "rec.test", "k1")
    listed = srv.cli("dkim", "list", "rec.test").stdout
    assert "k1-" not in listed and "k2-rsa\trsa-sha256\tsigning" in listed
    dns.stop()


def test_cli_errors(tmp_path):
    dns = DNSServer().start()
    srv = _server(tmp_path, dns)
    res = srv.cli("dkim", "generate", "nope.test", check=False)
    assert res.returncode == 1 and "not a local domain" in res.stderr
    srv.cli("domain", "add", "rec.test")
    res = srv.cli("dkim", "generate", "rec.test", "--selector", "bad_name", check=False)
    assert res.returncode == 1 and "invalid selector" in res.stderr
    res = srv.cli("dns", "check", "other.test", check=False)
    assert res.returncode == 1 and "not a local domain" in res.stderr
    dns.stop()
