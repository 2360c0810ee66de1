"""The ACME state in data_dir/acme: account key, certificate chain and its key."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ..net.tls import write_atomic

ACCOUNT_KEY, CERT, KEY = "account-key.pem", "cert.pem", "key.pem"


@dataclass(frozen=True)
class AcmeFiles:
    directory: Path                     # data_dir/acme

    @classmethod
    def of(cls, data_dir: Path) -> AcmeFiles:
        return cls(data_dir / "acme")

    @property
    def account_key(self) -> Path:
        return self.directory / ACCOUNT_KEY

    @property
    def cert(self) -> Path:
        return self.directory / CERT

    @property
    def key(self) -> Path:
        return self.directory / KEY

    @property
    def challenges(self) -> Path:
        return self.directory / "challenges"

    def ensure(self) -> None:
        # 0700: the account key and the certificate key are in here.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.challenges.mkdir(mode=0o755, exist_ok=True)

    def load_account_key(self) -> rsa.RSAPrivateKey:
        """The account key (RFC 8555 §7.3), made on first use, kept 0600."""
        self.ensure()
        if self.account_key.exists():
            key = serialization.load_pem_private_key(self.account_key.read_bytes(), None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{self.account_key}: expected an RSA private key")
            return key
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_atomic(self.account_key, private_pem(key), 0o600)
        return key

    def write(self, fullchain_pem: bytes, key_pem: bytes) -> None:
        """Key first, then the chain, each replaced atomically: a reader between the two
        finds a pair that does not match, which the TLS reload refuses (and retries)."""
        self.ensure()
        write_atomic(self.key, key_pem, 0o600)
        write_atomic(self.cert, fullchain_pem, 0o644)

    def read(self) -> x509.Certificate | None:
        """The leaf certificate (the first of the chain), or None if there is none."""
        try:
            return x509.load_pem_x509_certificate(self.cert.read_bytes())
        except (OSError, ValueError):
            return None

    def present(self) -> bool:
        return self.cert.is_file() and self.key.is_file()


@dataclass(frozen=True)
class CertificateInfo:
    """What `mailwright cert status` shows."""
    path: str
    issuer: str
    names: tuple[str, ...]
    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    def days_left(self, now: datetime.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower() for name in san.get_values_for_type(x509.DNSName))


def describe(cert: x509.Certificate, path: Path) -> CertificateInfo:
    issuer_cn = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertificateInfo(
        path=str(path),
        issuer=str(issuer_cn[0].value) if issuer_cn else cert.issuer.rfc4514_string(),
        names=dns_names(cert), serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc)


def private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
