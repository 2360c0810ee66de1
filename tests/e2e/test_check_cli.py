"""`mailwright check` end to end: the CLI against the loopback check zone
(tests/checkzone.py) and our own dev server. The broken domain exits 2 with every
planted flaw named; the domain set up as `mailwright dns records` says, served by our
own server, reports no failure; --json follows the documented schema; bad targets
exit 64 with a message."""

from __future__ import annotations

import json

import jsonschema
import pytest

from mailwright.check.report import JSON_SCHEMA

from ..checkzone import CheckWorld
from ..conftest import MailServer

GOOD_IP = "127.0.0.93"          # our dev server for good.test listens here


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = CheckWorld(tmp_path_factory.mktemp("world"))
    yield w
    w.stop()


def _queue(world, bundle) -> str:
    return f'[queue]\nca_bundle = "{bundle}"\nmta_sts_port = {world.https.port}\n'


@pytest.fixture(scope="module")
def cli(world, tmp_path_factory):
    """A config naming the check zone's resolver and the test CA; no server runs."""
    d = tmp_path_factory.mktemp("cli")
    return MailServer(d, hostname="mx.cli.test", dns_port=world.dns.port,
                      extra=_queue(world, world.ca.path))


def _json(res) -> dict:
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, JSON_SCHEMA)
    return doc


def _graded(doc) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in doc["findings"]:
        out.setdefault(f["id"], set()).add(f["severity"])
    return out


def test_broken_domain_exits_2_with_every_flaw_named(cli):
    res = cli.cli("check", "bad.test", "--only", "dns", "--allow-private", "--json",
                  "--selector", "weak", check=False)
    assert res.returncode == 2, res.stderr
    doc = _json(res)
    assert doc["target"] == "bad.test" and doc["exit_status"] == 2 and doc["worst"] == "fail"
    g = _graded(doc)
    for id in ("dns.mx.cname", "dns.mx.ip-literal", "dns.ptr.fcrdns", "dns.spf.lookups",
               "dns.spf.void", "dns.spf.include", "dns.spf.all", "dns.dmarc.record",
               "dns.mta-sts.mx", "dns.tls-rpt.record"):
        assert "fail" in g[id], id
    assert g["dns.dkim.strength"] == {"warn"} and g["dns.dkim.testing"] == {"warn"}
    assert {f["category"] for f in doc["findings"]} == {"dns"}
    assert doc["counts"]["fail"] == sum(f["severity"] == "fail" for f in doc["findings"])
    assert 0 <= doc["score"] < 100

    # The text report: grouped, the fix under each failure, a summary line.
    res = cli.cli("check", "bad.test", "--only", "dns", check=False)
    assert res.returncode == 2
    out = res.stdout
    assert "DNS" in out and "FAIL dns.spf.all" in out and "fix: end the record with -all" in out
    assert "why: RFC 7208 §5.1" in out and "score " in out and "failures: exit 2" in out
    # Without --allow-private the loopback MX addresses are failures too.
    assert "FAIL dns.host.public" in out


def test_external_dmarc_reports_warn(cli):
    res = cli.cli("check", "report.bad.test", "--only", "dns", "--allow-private", "--json",
                  check=False)
    g = _graded(_json(res))
    assert g["dns.dmarc.external"] == {"warn", "pass"} and g["dns.dmarc.policy"] == {"warn"}


@pytest.mark.parametrize("args, message", [
    (["not..a.domain"], "invalid target 'not..a.domain'"),
    (["mx.bad.test:70000"], "invalid port '70000'"),
    (["[2001:db8::1"], "brackets hold an IPv6 address"),
    (["bad.test", "--port", "x"], "argument --port: invalid int value"),
    (["bad.test", "--only", "ftp"], "invalid choice: 'ftp'"),
    (["bad.test", "--selector", "a b"], "invalid DKIM selector 'a b'"),
    (["bad.test", "--rcpt", "nobody"], "invalid address 'nobody'"),
    (["bad.test", "--timeout", "-1"], "invalid timeout -1.0"),
])
def test_usage_errors_exit_64(cli, args, message):
    res = cli.cli("check", *args, check=False)
    assert res.returncode == 64 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_one_server_target_runs_host_checks_only(cli):
    res = cli.cli("check", "mx.bad.test:2525", "--only", "dns", "--json", "--allow-private",
                  check=False)
    doc = _json(res)
    assert doc["target"] == "mx.bad.test:2525" and res.returncode == 2
    assert {f["id"] for f in doc["findings"]} == {
        "dns.host.address", "dns.host.public", "dns.ptr.present", "dns.ptr.fcrdns",
        "dns.ptr.match"}


@pytest.fixture(scope="module")
def good(world, tmp_path_factory):
    """good.test as `mailwright dns records` tells its admin, served by our dev server:
    its records, the MX host's A and PTR, and the MTA-STS policy over HTTPS."""
    d = tmp_path_factory.mktemp("good")
    bundle = d / "bundle.pem"
    bundle.write_bytes(world.ca.path.read_bytes())
    srv = MailServer(d, host=GOOD_IP, hostname="mx.good.test", dns_port=world.dns.port,
                     extra=_queue(world, bundle))
    srv.cli("domain", "add", "good.test")
    srv.add_user("alice@good.test")
    srv.cli("dkim", "generate", "good.test", "--selector", "k1")
    printed = srv.cli("dns", "records", "good.test").stdout
    zone = [line for line in printed.splitlines() if line and not line.startswith(";")]
    world.dns.add_zone("good.test", "\n".join(zone) + f"\nmx.good.test. 60 IN A {GOOD_IP}\n"
                       "mta-sts.good.test. 60 IN A 127.0.0.1\n")
    world.dns.add_zone(".".join(reversed(GOOD_IP.split("."))) + ".in-addr.arpa",
                       "@ 60 IN PTR mx.good.test.\n")
    policy = printed.split("containing:\n", 1)[1].split("; Reverse DNS")[0]
    world.https.policies["mta-sts.good.test"] = "".join(
        line.removeprefix(";   ") + "\n" for line in policy.splitlines())
    srv.start()
    # The certificate our server made for itself comes from its own CA: trust it too.
    bundle.write_bytes(world.ca.path.read_bytes() + (srv.data_dir / "tls" / "ca.pem").read_bytes())
    yield srv
    srv.stop()


def test_clean_domain_reports_no_failure(good):
    res = good.cli("check", "good.test", "--allow-private", "--json", "--port",
                   str(good.ports["mx"]), "--selector", "k1-rsa", "--selector", "k1-ed25519",
                   "--timeout", "10", "--rcpt", "alice@good.test", check=False)
    doc = _json(res)
    fails = [f for f in doc["findings"] if f["severity"] == "fail"]
    assert fails == [] and res.returncode in (0, 1), fails
    g = _graded(doc)
    for id in ("dns.mx.present", "dns.ptr.fcrdns", "dns.ptr.match", "dns.spf.lookups",
               "dns.spf.all", "dns.dkim.key", "dns.dkim.strength", "dns.dmarc.policy",
               "dns.mta-sts.policy", "dns.mta-sts.mx", "dns.tls-rpt.record",
               "smtp.connect", "tls.starttls", "tls.certificate.chain",
               "tls.certificate.name", "auth.on-mx", "smtp.open-relay", "smtp.smuggling"):
        assert g[id] == {"pass"}, (id, [f for f in doc["findings"] if f["id"] == id])
    assert {f["category"] for f in doc["findings"]} == {"dns", "smtp", "tls", "auth"}
    # The probes (relay, smuggling with a real recipient) delivered nothing.
    assert good.inbox("alice@good.test") == []


def test_only_narrows_a_domain_check_to_its_mx_probes(good):
    res = good.cli("check", "good.test", "--only", "tls", "--json", "--port",
                   str(good.ports["mx"]), "--timeout", "10", check=False)
    doc = _json(res)
    assert {f["category"] for f in doc["findings"]} == {"tls"}, doc["findings"]
    assert res.returncode == doc["exit_status"]
