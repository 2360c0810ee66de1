"""The pure parts of the SMTP probes: certificate name matching (RFC 6125), expiry
grading, the relay address forms, the TLS version contexts."""

from __future__ import annotations

import datetime
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mailwright.check.findings import Severity
from mailwright.check.smtp import certificate, relay, tls
from mailwright.check.smtp.session import Target

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def target(role: str = "mx") -> Target:
    return Target(host="mx.example.com", ip="192.0.2.1", port=25, role=role,
                  expect_name="mx.example.com", helo="client.example.net", timeout=5.0)


def cert(names: list[str], not_after: datetime.datetime, self_signed: bool = True) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer = subject if self_signed else \
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")])
    built = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(1)
             .not_valid_before(NOW - datetime.timedelta(days=30)).not_valid_after(not_after)
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                            critical=False)
             .sign(key, hashes.SHA256()))
    return built.public_bytes(Encoding.DER)


def by_id(findings) -> dict:
    return {f.id: f for f in findings}


def test_name_matching_follows_rfc6125():
    match = certificate.name_matches
    assert match("mx.example.com", ["MX.Example.com."], [])
    assert match("mx.example.com", ["*.example.com"], [])
    assert not match("a.mx.example.com", ["*.example.com"], [])     # one label only
    assert not match("example.com", ["*.example.com"], [])
    assert not match("mx.com", ["*.com"], [])                       # no public-suffix wildcard
    assert not match("mx.example.com", ["mx.example.org"], [])
    assert match("192.0.2.1", [], ["192.0.2.1"])
    assert not match("192.0.2.1", ["192.0.2.1"], [])                # a DNS SAN is not an IP


def test_expiry_is_graded_at_fourteen_days():
    def grade(days: float, role: str = "mx") -> Severity:
        der = cert(["mx.example.com"], NOW + datetime.timedelta(days=days))
        return by_id(certificate.certificate_findings(target(role), der, NOW))[
            "tls.certificate.expiry"].severity
    assert grade(90) is Severity.PASS
    assert grade(15) is Severity.PASS
    assert grade(13) is Severity.WARN
    assert grade(-1) is Severity.FAIL


def test_name_and_self_signed_are_warnings_on_an_mx_failures_on_submission():
    der = cert(["other.example.org"], NOW + datetime.timedelta(days=90))
    mx = by_id(certificate.certificate_findings(target("mx"), der, NOW))
    sub = by_id(certificate.certificate_findings(target("submission"), der, NOW))
    assert mx["tls.certificate.name"].severity is Severity.WARN
    assert sub["tls.certificate.name"].severity is Severity.FAIL
    assert "other.example.org" in mx["tls.certificate.name"].seen
    assert mx["tls.certificate.self-signed"].severity is Severity.WARN
    assert sub["tls.certificate.self-signed"].severity is Severity.FAIL
    issued = cert(["mx.example.com"], NOW + datetime.timedelta(days=90), self_signed=False)
    found = by_id(certificate.certificate_findings(target(), issued, NOW))
    assert found["tls.certificate.self-signed"].severity is Severity.PASS
    assert found["tls.certificate.name"].severity is Severity.PASS


def test_relay_forms_name_only_reserved_external_domains():
    forms = dict(relay.forms("mx.example.com"))
    assert forms == {
        "plain": "<relay-check@example.net>",
        "percent-hack": "<relay-check%example.net@mx.example.com>",
        "source-route": "<@mx.example.com:relay-check@example.net>",
        "quoted-local-part": '<"relay-check@example.net"@mx.example.com>',
        "bang-path": "<example.net!relay-check@mx.example.com>",
    }
    by_ip = Target(host="192.0.2.1", ip="192.0.2.1", port=25, role="mx",
                   expect_name="192.0.2.1", helo="h", timeout=1.0)
    assert relay.local_domain(by_ip) == "[192.0.2.1]"


def test_pinned_contexts_speak_one_version_each():
    for _, _, version, _ in tls.VERSIONS:
        ctx = tls.pinned_context(version)
        if ctx is None:          # this OpenSSL cannot: reported as "could not be tested"
            continue
        assert ctx.minimum_version == ctx.maximum_version == version
        assert ctx.verify_mode == ssl.CERT_NONE
