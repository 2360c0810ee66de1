"""TLS server contexts, and the certificate the server issues itself when none is configured.

Without [tls] cert/key the server does what mkcert does: it keeps a private CA in
data_dir/tls (ca.pem, ca-key.pem) and serves a leaf certificate issued by it (cert.pem,
key.pem). A client trusts ca.pem once; the leaf can then be reissued (new listener address,
expiry) without the client noticing. A self-signed leaf, which earlier versions made, is a
CA certificate to OpenSSL, so clients such as mbsync verify it as a trust anchor and then
fail on the host name.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("mailwright")

CA_CERT, CA_KEY, LEAF_CERT, LEAF_KEY = "ca.pem", "ca-key.pem", "cert.pem", "key.pem"
CA_ORGANIZATION = "Mailwright local CA"      # marks the CAs (and so the leaves) made here
CA_LIFETIME = datetime.timedelta(days=3650)
# Apple platforms refuse TLS server certificates valid for longer than 825 days, even from
# a private CA.
LEAF_LIFETIME = datetime.timedelta(days=825)
RENEW_BEFORE = datetime.timedelta(days=30)   # at start, reissue what expires sooner
BACKDATE = datetime.timedelta(minutes=5)     # tolerate clients whose clock is a little behind

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ServerNames:
    """What the leaf certificate names, and so what the CA may issue for."""
    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]
    common_name: str


@dataclass(frozen=True)
class LocalCertificate:
    cert: Path
    key: Path
    ca: Path | None        # the CA clients trust; None: cert.pem was not made here


def server_names(hostname: str, addresses: Iterable[str]) -> ServerNames:
    """The host name, localhost and every listener address (a wildcard address names
    nothing; loopback is always named)."""
    listening = _unique(ip for ip in map(ipaddress.ip_address, addresses)
                        if not ip.is_unspecified)
    ips = _unique([*listening, ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")])
    # The subject CN is the address clients are shown first: clients that match only DNS
    # names and the CN (isync 1.4, mutt, git imap-send) can then verify a connection by IP
    # address too. Conforming clients ignore the CN when the certificate has SANs
    # (RFC 6125 §6.4.4), and the CA/Browser Forum Baseline Requirements allow there an IP
    # address from the SANs. Host names reach every client through the DNS SANs.
    return ServerNames(dns=tuple(_unique([hostname.lower(), "localhost"])), ips=tuple(ips),
                       common_name=str(ips[0]))


def local_certificate(directory: Path, hostname: str,
                      addresses: Iterable[str]) -> LocalCertificate:
    """The leaf to serve from directory, issued (again) by the local CA when needed."""
    names = server_names(hostname, addresses)
    cert_path, key_path = directory / LEAF_CERT, directory / LEAF_KEY
    ca_cert_path, ca_key_path = directory / CA_CERT, directory / CA_KEY
    leaf = _read_cert(cert_path)
    if leaf is not None and not _made_here(leaf):
        # Someone put their own certificate here without configuring [tls]: serve it as it
        # is; only a certificate this code made is ever replaced.
        log.warning("%s was not made by Mailwright: serving it unchanged; configure it as "
                    "[tls] cert and key", cert_path)
        return LocalCertificate(cert_path, key_path, None)
    if leaf is not None and _self_signed(leaf):
        log.warning("replacing the self-signed certificate made by an earlier version (%s) "
                    "with one issued by the local CA %s: clients trust that file now",
                    cert_path, ca_cert_path)
    now = datetime.datetime.now(datetime.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    ca = _read_pair(ca_cert_path, ca_key_path)
    if ca is None or not _ca_usable(ca[0], names, now):
        if ca is not None:
            log.warning("making a new local CA: %s does not cover %s; clients must trust "
                        "the new one", ca_cert_path, ", ".join(_all_names(names)))
        ca = make_ca(names, now)
        _write_pair(ca_cert_path, ca_key_path, *ca)
        log.info("made a local CA for client trust: %s", ca_cert_path)
    key = _read_key(key_path)
    if leaf is None or key is None or not _leaf_current(leaf, key, ca[0], names, now):
        _write_pair(cert_path, key_path, *issue_leaf(ca, names, now))
        log.info("issued the server certificate %s for %s", cert_path,
                 ", ".join(_all_names(names)))
    return LocalCertificate(cert_path, key_path, ca_cert_path)


def make_ca(names: ServerNames, now: datetime.datetime
            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        # RFC 5280 Appendix A: ub-common-name is 64 characters.
        x509.NameAttribute(NameOID.COMMON_NAME, f"Mailwright CA for {names.dns[0]}"[:64]),
    ])
    # RFC 5280 §4.2.1.10: a client that imports this CA trusts it for these names only,
    # so a leaked CA key cannot vouch for anyone else's site.
    permitted: list[x509.GeneralName] = [x509.DNSName(name) for name in names.dns]
    permitted += [x509.IPAddress(ipaddress.ip_network(ip)) for ip in names.ips]
    cert = (_builder(subject, subject, key.public_key(), now, CA_LIFETIME)
            # RFC 5280 §4.2.1.9: a CA; path length 0: it issues leaves only.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.NameConstraints(permitted_subtrees=permitted,
                                                excluded_subtrees=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue_leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], names: ServerNames,
               now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _leaf_subject(names)
    lifetime = min(LEAF_LIFETIME, ca_cert.not_valid_after_utc - now)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names.dns]
    sans += [x509.IPAddress(ip) for ip in names.ips]
    cert = (_builder(subject, ca_cert.subject, key.public_key(), now, lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # RFC 5480 §3: an EC key may be used for digitalSignature, not keyEncipherment
            # (that is RSA key transport).
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


# --- what is on disk ------------------------------------------------------------------------

def _made_here(cert: x509.Certificate) -> bool:
    issuer_orgs = cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return any(a.value == CA_ORGANIZATION for a in issuer_orgs) or _self_signed(cert)


def _self_signed(cert: x509.Certificate) -> bool:
    """The certificate earlier versions made: self-issued CA:TRUE naming localhost."""
    if cert.issuer != cert.subject or not _is_ca(cert):
        return False
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return "localhost" in sans.get_values_for_type(x509.DNSName)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _ca_usable(ca: x509.Certificate, names: ServerNames, now: datetime.datetime) -> bool:
    return (_is_ca(ca) and ca.not_valid_after_utc - now > RENEW_BEFORE
            and _permits(ca, names))


def _permits(ca: x509.Certificate, names: ServerNames) -> bool:
    """Whether the CA's name constraints (RFC 5280 §4.2.1.10) allow every name."""
    try:
        constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False                      # not one of ours: they always carry them
    permitted = constraints.permitted_subtrees or []
    domains = [g.value.lower() for g in permitted if isinstance(g, x509.DNSName)]
    networks = [g.value for g in permitted if isinstance(g, x509.IPAddress)]
    return (all(any(name == d or name.endswith("." + d) for d in domains) for name in names.dns)
            and all(any(ip.version == n.version and ip in n for n in networks)
                    for ip in names.ips))


def _leaf_current(leaf: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                  ca: x509.Certificate, names: ServerNames, now: datetime.datetime) -> bool:
    """Issued by this CA for exactly these names, matching its key, not about to expire."""
    try:
        leaf.verify_directly_issued_by(ca)
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return (_public_der(leaf.public_key()) == _public_der(key.public_key())
            and set(sans.get_values_for_type(x509.DNSName)) == set(names.dns)
            and set(sans.get_values_for_type(x509.IPAddress)) == set(names.ips)
            and leaf.subject == _leaf_subject(names)
            and leaf.not_valid_after_utc - now > RENEW_BEFORE)


def _read_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _read_key(path: Path):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None


def _read_pair(cert_path: Path, key_path: Path):
    """A certificate and its private key, or None when either is missing or they differ."""
    cert, key = _read_cert(cert_path), _read_key(key_path)
    if cert is None or key is None or \
            _public_der(cert.public_key()) != _public_der(key.public_key()):
        return None
    return cert, key


def _write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key) -> None:
    """Key first, then certificate, each replaced atomically: a crash in between leaves a
    pair that does not match, which the next start notices and issues again."""
    write_atomic(key_path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()), 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace path with data: a reader sees the old file or the new one, never a part
    (written beside it, fsynced, renamed over it; the directory fsynced after)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)                 # O_CREAT's mode is filtered by the umask
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)             # the rename itself survives a crash
    finally:
        os.close(directory)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: datetime.datetime,
             lifetime: datetime.timedelta) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + lifetime))


def _leaf_subject(names: ServerNames) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.common_name)])


def _key_usage(**set_bits: bool) -> x509.KeyUsage:
    bits = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                          "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                          "encipher_only", "decipher_only"), False)
    return x509.KeyUsage(**(bits | set_bits))


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _all_names(names: ServerNames) -> list[str]:
    return [*names.dns, *map(str, names.ips)]


def _unique(items) -> list:
    return list(dict.fromkeys(items))
