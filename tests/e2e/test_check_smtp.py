"""The SMTP, TLS and AUTH probes (check/smtp) against real servers on loopback: our own
server correctly configured reports no failure; deliberately broken servers each have
their planted flaw found and named by id; nothing is ever delivered."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import ssl
import tempfile
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailwright.check.findings import Severity
from mailwright.check.smtp import server_findings
from mailwright.check.smtp.session import SLOW_GREETING
from mailwright.dns import Resolver

from ..conftest import MailServer, free_port, loopback_dns, require
from ..postfix import POSTFIX, Postfix
from .brokensmtp import (
    LOCAL_DOMAIN,
    BrokenServer,
    ExpandingSMTP,
    GreetingServer,
    Handler,
    ca_and_leaf,
    expired_self_signed,
    server_context,
)

ALL = frozenset({"smtp", "tls", "auth"})
HOSTNAME = "mx.checksmtp.test"
DEV_IP = "127.0.0.77"        # its PTR and A are served by the loopback DNS
POSTFIX_DOMAIN = "postfix.test"


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


ZONE = f"$TTL 60\n@ IN SOA ns h 1 3600 600 86400 60\nmx IN A {DEV_IP}\n"


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    """Our own server as deployed: a certificate from its CA naming its host name, the
    PTR of its address naming it and that name resolving back."""
    dns = loopback_dns()
    dns.add_zone("checksmtp.test", ZONE)
    dns.add_zone("77.0.0.127.in-addr.arpa",
                 f"$TTL 60\n@ IN SOA ns.checksmtp.test. h 1 3600 600 86400 60\n"
                 f"@ IN PTR {HOSTNAME}.\n")
    # A 1 MiB size limit: the smuggling probe sends that much per sequence.
    srv = MailServer(tmp_path_factory.mktemp("dev"), host=DEV_IP, hostname=HOSTNAME,
                     extra="[limits]\nmax_message_size = 1048576\n")
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
    assert "SIZE 1048576" in found["smtp.ext.size"][0].seen
    if role == "mx":
        assert severity(found, "auth.on-mx") is Severity.PASS
    else:
        assert severity(found, "auth.submission") is Severity.PASS
    assert_nothing_delivered(dev_server)


def assert_nothing_delivered(srv: MailServer) -> None:
    assert srv.inbox("alice@checksmtp.test") == []
    assert "0 queued message(s)" in srv.cli("queue", "list").stdout


def test_dane_records_are_matched_against_the_certificate(dev_server):
    cert = x509.load_pem_x509_certificate((dev_server.data_dir / "tls" / "cert.pem").read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    right, wrong = hashlib.sha256(spki).hexdigest(), "00" * 32
    mx, submission = dev_server.ports["mx"], dev_server.ports["submission"]
    dns = loopback_dns()
    dns.add_zone("checksmtp.test", ZONE + f"_{mx}._tcp.mx IN TLSA 3 1 1 {right}\n"
                                          f"_{submission}._tcp.mx IN TLSA 3 1 1 {wrong}\n")
    try:
        matching = probe(HOSTNAME, mx, categories=frozenset({"tls"}))
        stale = probe(HOSTNAME, submission, role="submission", categories=frozenset({"tls"}))
    finally:
        dns.add_zone("checksmtp.test", ZONE)
    # The test zone is not signed: senders would ignore even matching records.
    assert severity(matching, "tls.dane") is Severity.WARN
    assert "not DNSSEC-validated" in matching["tls.dane"][0].seen
    assert severity(stale, "tls.dane") is Severity.FAIL
    assert "matches none" in stale["tls.dane"][0].seen


def test_categories_narrow_the_probes(dev_server):
    found = probe(HOSTNAME, dev_server.ports["mx"], categories=frozenset({"auth"}))
    assert {id.split(".")[0] for id in found} == {"auth"}


def test_unreachable_server_is_one_failure_whatever_the_categories(dev_server):
    found = probe("127.0.0.1", free_port(), categories=frozenset({"tls"}))
    assert list(found) == ["smtp.connect"] and severity(found, "smtp.connect") is Severity.FAIL


# --- planted flaws ----------------------------------------------------------------------

def test_open_relay_is_found(tmp_path):
    with BrokenServer(handler=Handler(open_relay=True)) as srv:
        found = probe("127.0.0.1", srv.port, expect_name=f"mx.{LOCAL_DOMAIN}")
    relay = found["smtp.open-relay"][0]
    assert relay.severity is Severity.FAIL, relay
    assert "accepted plain" in relay.seen and "percent-hack" in relay.seen
    assert srv.handler.messages == []


def test_server_without_starttls(tmp_path):
    with BrokenServer() as srv:
        found = probe("127.0.0.1", srv.port, expect_name=f"mx.{LOCAL_DOMAIN}")
    assert severity(found, "tls.starttls") is Severity.FAIL
    assert "not offered" in found["tls.starttls"][0].seen
    # ... and which refuses relaying in every form, the catch-all control included.
    assert severity(found, "smtp.open-relay") is Severity.PASS
    assert not any(id.startswith(("tls.version", "tls.certificate")) for id in found)
    assert srv.handler.messages == []


@pytest.mark.parametrize("role, graded", [("mx", Severity.WARN),
                                          ("submission", Severity.FAIL)])
def test_expired_self_signed_certificate_with_another_name(tmp_path, role, graded):
    cert, key = expired_self_signed(tmp_path, "wrong.example")
    with BrokenServer(tls_context=server_context(cert, key, allow_tls1=True)) as srv:
        found = probe("127.0.0.1", srv.port, expect_name=f"mx.{LOCAL_DOMAIN}", role=role)
    assert severity(found, "tls.starttls") is Severity.PASS
    assert severity(found, "tls.certificate.expiry") is Severity.FAIL
    assert "expired on" in found["tls.certificate.expiry"][0].seen
    assert severity(found, "tls.certificate.name") is graded
    assert "wrong.example" in found["tls.certificate.name"][0].seen
    assert severity(found, "tls.certificate.self-signed") is graded
    assert severity(found, "tls.certificate.chain") is graded
    assert severity(found, "tls.version.tls1_0") is Severity.WARN
    assert severity(found, "tls.version.tls1_1") is Severity.WARN
    assert severity(found, "tls.version.tls1_2") is Severity.PASS


def test_server_speaking_only_old_tls(tmp_path):
    """Our default context (TLS 1.2 at least) cannot complete the handshake: STARTTLS
    fails, and the version probes say why."""
    ca, cert, key = ca_and_leaf(tmp_path, f"mx.{LOCAL_DOMAIN}")
    context = server_context(cert, key, allow_tls1=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)        # on purpose
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with BrokenServer(tls_context=context) as srv:
        found = probe("127.0.0.1", srv.port, expect_name=f"mx.{LOCAL_DOMAIN}", cafile=str(ca))
    assert severity(found, "tls.starttls") is Severity.FAIL
    assert "handshake failed" in found["tls.starttls"][0].seen
    assert severity(found, "tls.version.tls1_0") is Severity.WARN
    assert severity(found, "tls.version.tls1_2") is Severity.INFO
    assert severity(found, "tls.version.modern") is Severity.FAIL
    # The rest was probed over the plaintext session a sender would fall back to.
    assert severity(found, "smtp.open-relay") is Severity.PASS
    assert srv.handler.messages == []


def test_auth_before_tls_and_on_the_mx_port(tmp_path):
    ca, cert, key = ca_and_leaf(tmp_path, f"mx.{LOCAL_DOMAIN}", days_left=10)
    with BrokenServer(tls_context=server_context(cert, key), auth_before_tls=True) as srv:
        found = probe("127.0.0.1", srv.port, expect_name=f"mx.{LOCAL_DOMAIN}",
                      cafile=str(ca))
    assert severity(found, "auth.before-tls") is Severity.FAIL
    assert severity(found, "auth.on-mx") is Severity.WARN
    # The rest of its TLS is sound, but the certificate is about to expire.
    assert severity(found, "tls.certificate.chain") is Severity.PASS
    assert severity(found, "tls.certificate.name") is Severity.PASS
    assert severity(found, "tls.certificate.expiry") is Severity.WARN
    assert severity(found, "tls.version.tls1_0") is Severity.PASS


def test_vrfy_and_expn_answered(tmp_path):
    with BrokenServer(handler=Handler(vrfy=True), smtp_class=ExpandingSMTP) as srv:
        found = probe("127.0.0.1", srv.port, expect_name=f"mx.{LOCAL_DOMAIN}")
    assert severity(found, "smtp.vrfy") is Severity.WARN
    assert "postmaster@" in found["smtp.vrfy"][0].seen
    assert severity(found, "smtp.expn") is Severity.WARN
    assert srv.handler.messages == []


def test_temporary_refusal_as_greeting_is_a_warning_not_a_failure():
    with GreetingServer("421 4.7.0 mx.broken.test busy, try later") as srv:
        found = probe("127.0.0.1", srv.port)
    assert list(found) == ["smtp.greeting"]
    assert severity(found, "smtp.greeting") is Severity.WARN
    assert "421" in found["smtp.greeting"][0].seen


def test_tarpit_longer_than_our_patience_is_a_warning():
    with GreetingServer(delay=30) as srv:
        found = probe("127.0.0.1", srv.port, timeout=1.0)
    assert severity(found, "smtp.greeting") is Severity.WARN
    assert "no greeting within 1 s" in found["smtp.greeting"][0].seen


def test_slow_greeting_is_noticed_as_information():
    with GreetingServer(delay=SLOW_GREETING + 0.3, first_only=True) as srv:
        found = probe("127.0.0.1", srv.port, categories=frozenset({"auth", "smtp"}))
    assert severity(found, "smtp.greeting") is Severity.INFO
    assert "tarpit" in found["smtp.greeting"][0].seen
    assert failures(found) == []


def test_an_unreachable_address_is_skipped_for_the_next():
    dns = loopback_dns()
    with GreetingServer(host="::1") as srv:
        # 127.0.0.78 listens on nothing: connection refused, as for a dead address.
        # A records are tried before AAAA, so it comes first.
        dns.add_zone("dual.test", "$TTL 60\n@ IN SOA ns h 1 3600 600 86400 60\n"
                                  "mx IN A 127.0.0.78\nmx IN AAAA ::1\n")
        found = probe("mx.dual.test", srv.port, categories=frozenset({"auth"}))
    connects = found["smtp.connect"]
    assert [f.severity for f in connects] == [Severity.WARN]
    assert "127.0.0.78" in connects[0].subject and "next address" in connects[0].seen
    assert [f.subject for f in found["auth.before-tls"]] == [f"mx.dual.test [::1]:{srv.port}"]


def test_smuggling_probe_needs_a_recipient(dev_server):
    found = probe(HOSTNAME, dev_server.ports["mx"], categories=frozenset({"smtp"}))
    assert severity(found, "smtp.smuggling") is Severity.INFO
    assert "--rcpt" in found["smtp.smuggling"][0].seen


def test_postfix_accepting_bare_newlines_is_found_and_nothing_delivered():
    require(POSTFIX, "script")
    # Not pytest's tmp_path: the postfix user must walk into it, and pytest keeps its
    # base directory private (0700), resetting it whenever a session starts.
    work = Path(tempfile.mkdtemp(prefix="mw-check-postfix-"))
    postfix = Postfix(work, free_port(), f"""mydestination = {POSTFIX_DOMAIN}
local_recipient_maps =
mynetworks = 192.0.2.0/24
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_forbid_bare_newline = no
message_size_limit = 65536
defer_transports = local, virtual, smtp, relay, error
""", hostname=f"mx.{POSTFIX_DOMAIN}")
    try:
        found = probe("127.0.0.1", postfix.port, expect_name=f"mx.{POSTFIX_DOMAIN}",
                      rcpt=f"probe@{POSTFIX_DOMAIN}", categories=frozenset({"smtp"}))
        queued = postfix.queued()
    finally:
        postfix.stop()
        shutil.rmtree(work, ignore_errors=True)
    smuggling = found["smtp.smuggling"][0]
    assert smuggling.severity is Severity.FAIL, smuggling
    assert "<LF>.<LF> as end of data" in smuggling.seen
    assert "<CR>.<CR> as end" not in smuggling.seen      # Postfix never takes a bare CR
    assert "552" in smuggling.seen
    assert queued == []
    assert severity(found, "smtp.open-relay") is Severity.PASS


def test_our_server_ends_data_only_at_crlf_dot_crlf(dev_server):
    found = probe(HOSTNAME, dev_server.ports["mx"], categories=frozenset({"smtp"}),
                  rcpt="alice@checksmtp.test")
    smuggling = found["smtp.smuggling"][0]
    assert smuggling.severity is Severity.PASS, smuggling
    assert_nothing_delivered(dev_server)
