"""The certificate the server presents: chain validity (the system's CAs plus cafile),
expiry, the name a sender asks for (the MX name), self-signed.

An MX with an untrusted or misnamed certificate still gets mail from opportunistic
senders (RFC 7435) but not from senders that authenticate it (MTA-STS RFC 8461 §4.2,
DANE-TA, smarthost clients): a warning there; on the submission ports the clients are
mail programs that verify, so it is a failure.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from ..findings import Finding, Severity
from .session import LOST, Refused, Target, describe_error, open_session

EXPIRY_WARNING = datetime.timedelta(days=14)
WHY_CHAIN = ("RFC 8461 §4.2 (MTA-STS) and RFC 8314 §4.3 (submission clients): the "
             "certificate must chain to a trusted CA")
WHY_NAME = "RFC 6125 §6 / RFC 8461 §4.2: the certificate must name the host the client asked for"
WHY_EXPIRY = "RFC 5280 §4.1.2.5: an expired certificate fails every verifying client"


def verifying_context(cafile: str) -> ssl.SSLContext:
    """The system's trust store plus cafile. The name is checked separately (name
    finding), so that a chain failure and a name mismatch are told apart."""
    ctx = ssl.create_default_context()
    if cafile:
        ctx.load_verify_locations(cafile)
    ctx.check_hostname = False
    return ctx


async def chain_finding(target: Target) -> Finding:
    """A handshake with a verifying context: its outcome is the verdict on the chain."""
    try:
        ctx = verifying_context(target.cafile)
    except (OSError, ssl.SSLError) as e:
        return target.finding("tls.certificate.chain", Severity.INFO,
                              f"could not read the CA file {target.cafile}: {e}")
    try:
        session = await open_session(target, tls_context=ctx)
    except ssl.SSLCertVerificationError as e:
        severity = Severity.WARN if target.role == "mx" else Severity.FAIL
        return target.finding("tls.certificate.chain", severity,
                              f"does not verify: {e.verify_message}", WHY_CHAIN,
                              "serve the full chain from a CA senders trust (e.g. an ACME "
                              "CA such as Let's Encrypt)")
    except (*LOST, Refused) as e:
        return target.finding("tls.certificate.chain", Severity.INFO,
                              f"could not be tested: {describe_error(e)}")
    await session.drop()
    return target.finding("tls.certificate.chain", Severity.PASS,
                          "chains to a trusted CA" + (f" (with {target.cafile})"
                                                      if target.cafile else ""))


def certificate_findings(target: Target, der: bytes,
                         now: datetime.datetime | None = None) -> list[Finding]:
    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.datetime.now(datetime.UTC)
    return [_expiry(target, cert, now), _name(target, cert), _self_signed(target, cert)]


def _expiry(target: Target, cert: x509.Certificate, now: datetime.datetime) -> Finding:
    after, before = cert.not_valid_after_utc, cert.not_valid_before_utc
    day = after.date().isoformat()
    if now > after:
        return target.finding("tls.certificate.expiry", Severity.FAIL, f"expired on {day}",
                              WHY_EXPIRY, "renew the certificate (automate it: ACME)")
    if now < before:
        return target.finding("tls.certificate.expiry", Severity.FAIL,
                              f"not valid before {before.date().isoformat()}", WHY_EXPIRY,
                              "check the server's clock and the certificate's dates")
    left = after - now
    if left < EXPIRY_WARNING:
        return target.finding("tls.certificate.expiry", Severity.WARN,
                              f"expires on {day}, in {left.days} days", WHY_EXPIRY,
                              "renew the certificate now (automate it: ACME)")
    return target.finding("tls.certificate.expiry", Severity.PASS,
                          f"valid until {day} ({left.days} days)")


def names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate is for: its SANs, or its subject CN
    when it has none (RFC 6125 §6.4.4)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return (list(sans.get_values_for_type(x509.DNSName)),
                [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)])
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(a.value) for a in cns], []


def name_matches(name: str, dns_names: list[str], ips: list[str]) -> bool:
    """RFC 6125 §6.4: exact match, or a wildcard as the whole leftmost label matching
    exactly one label; an address matches only an iPAddress SAN."""
    try:
        return str(ipaddress.ip_address(name)) in ips
    except ValueError:
        pass
    name = name.lower().rstrip(".")
    for pattern in (n.lower().rstrip(".") for n in dns_names):
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and \
                name.split(".", 1)[1] == pattern[2:] and pattern.count(".") >= 2:
            return True
    return False


def _name(target: Target, cert: x509.Certificate) -> Finding:
    dns_names, ips = names(cert)
    listed = ", ".join(dns_names + ips) or "(no names)"
    if name_matches(target.expect_name, dns_names, ips):
        return target.finding("tls.certificate.name", Severity.PASS,
                              f"names {target.expect_name} ({listed})")
    return target.finding("tls.certificate.name",
                          Severity.WARN if target.role == "mx" else Severity.FAIL,
                          f"is for {listed}, not {target.expect_name}", WHY_NAME,
                          f"include {target.expect_name} in the certificate's "
                          "subjectAltName")


def _self_signed(target: Target, cert: x509.Certificate) -> Finding:
    issuer = cert.issuer.rfc4514_string() or "(empty)"
    if cert.issuer == cert.subject:
        try:
            cert.verify_directly_issued_by(cert)
            signed_by_itself = True
        except (ValueError, TypeError, InvalidSignature):
            signed_by_itself = False
        if signed_by_itself:
            return target.finding("tls.certificate.self-signed",
                                  Severity.WARN if target.role == "mx" else Severity.FAIL,
                                  f"self-signed ({issuer})", WHY_CHAIN,
                                  "use a certificate issued by a CA senders trust")
    return target.finding("tls.certificate.self-signed", Severity.PASS,
                          f"issued by {issuer}")
