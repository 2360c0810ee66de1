"""The SMTP, TLS and AUTH probes (check/smtp) against real servers on loopback: our own
server correctly configured reports no failure; deliberately broken servers each have
their planted flaw found and named by id; nothing is ever delivered."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.check.findings import Severity
from mailwright.check.smtp import server_findings
from mailwright.dns import Resolver

from ..conftest import MailServer, loopback_dns

ALL = frozenset({"smtp", "tls", "auth"})
HOSTNAME = "mx.checksmtp.test"
DEV_IP = "127.0.0.77"        # its PTR and A are served by the loopback DNS


def probe(host: str, port: int, **kw) -> dict[str, list]:
    """Findings by id."""
    dns = loopback_dns()
    resolver = Resolver(["127.0.0.1"], dns.port, 2.0)
    kw.setdefault("categories", ALL)
    kw.setdefault("timeout", 10.0)
    kw.setdefault("helo", "client.checksmtp.test")
    found = asyncio.run(server_findings(host, port, resolver=resolver, **kw))
    by_id: dict[str, list] = {}
    for f in found:
        by_id.setdefault(f.id, []).append(f)
    return by_id


def severity(by_id: dict[str, list], id: str) -> Severity:
    assert id in by_id, f"{id} not reported; got {sorted(by_id)}"
    return max(f.severity for f in by_id[id])


def failures(by_id: dict[str, list]) -> list:
    return [f for fs in by_id.values() for f in fs if f.severity is Severity.FAIL]


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    """Our own server as deployed: a certificate from its CA naming its host name, the
    PTR of its address naming it and that name resolving back."""
    dns = loopback_dns()
    dns.add_zone("checksmtp.test", "$TTL 60\n@ IN SOA ns h 1 3600 600 86400 60\n"
                                   f"mx IN A {DEV_IP}\n")
    dns.add_zone("77.0.0.127.in-addr.arpa",
                 f"$TTL 60\n@ IN SOA ns.checksmtp.test. h 1 3600 600 86400 60\n"
                 f"@ IN PTR {HOSTNAME}.\n")
    srv = MailServer(tmp_path_factory.mktemp("dev"), host=DEV_IP, hostname=HOSTNAME)
    srv.cli("domain", "add", "checksmtp.test")
    srv.add_user("alice@checksmtp.test")
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("role", ["mx", "submission", "submissions"])
def test_our_server_reports_no_failure(dev_server, role):
    found = probe(HOSTNAME, dev_server.ports[role], role=role,
                  cafile=str(dev_server.data_dir / "tls" / "ca.pem"))
    assert failures(found) == []
    for id in ("smtp.connect", "smtp.greeting", "smtp.greeting.name", "smtp.ehlo.name",
               "smtp.ext.size", "tls.certificate.chain", "tls.certificate.name",
               "tls.certificate.expiry", "tls.version.tls1_0", "tls.version.tls1_1",
               "tls.version.tls1_3", "auth.before-tls", "tls.cipher"):
        assert severity(found, id) is Severity.PASS, found[id]
    assert severity(found, "tls.implicit" if role == "submissions" else "tls.starttls") \
        is Severity.PASS
    assert "26214400" in found["smtp.ext.size"][0].seen
    if role == "mx":
        assert severity(found, "auth.on-mx") is Severity.PASS
    else:
        assert severity(found, "auth.submission") is Severity.PASS
    assert dev_server.inbox("alice@checksmtp.test") == []


def test_categories_narrow_the_probes(dev_server):
    found = probe(HOSTNAME, dev_server.ports["mx"], categories=frozenset({"auth"}))
    assert {id.split(".")[0] for id in found} == {"auth"}


def test_unreachable_server_is_one_failure_whatever_the_categories(dev_server):
    from ..conftest import free_port
    found = probe("127.0.0.1", free_port(), categories=frozenset({"tls"}))
    assert list(found) == ["smtp.connect"] and severity(found, "smtp.connect") is Severity.FAIL
