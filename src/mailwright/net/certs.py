"""The server's certificates: several, chosen per handshake by the name the client asks
for (SNI, RFC 6066 §3), and replaced for new handshakes without touching established
connections (SIGHUP, service/reload).

Every listener, STARTTLS upgrade and the HTTPS server is handed one SSLContext, the
`context` here, once at start. Reloading changes that object in place: OpenSSL copies a
context's certificate into each connection when the connection is made (SSL_new), so
load_cert_chain on the live context affects only handshakes that start afterwards. The
other certificates are contexts of their own that the SNI callback switches a handshake
to; the callback reads the current table at each handshake.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .tls import server_context


class CertificateError(Exception):
    """A certificate or key that cannot be served, phrased for the admin."""


@dataclass(frozen=True)
class Served:
    cert: Path
    key: Path
    names: tuple[str, ...]      # subjectAltName DNS names, lower case (may be "*.x.y")
    serial: int


def load_pair(cert: Path, key: Path) -> tuple[ssl.SSLContext, Served]:
    """A server context for one certificate and key, checked to match."""
    try:
        leaf = x509.load_pem_x509_certificate(Path(cert).read_bytes())
    except OSError as e:
        raise CertificateError(f"cannot read {cert}: {e.strerror}") from None
    except ValueError:
        raise CertificateError(f"{cert} is not a PEM certificate") from None
    try:
        ctx = server_context(cert, key)
    except ssl.SSLError as e:        # before OSError, which it is a subclass of
        raise CertificateError(f"cannot use certificate {cert} with key {key}: "
                               f"{e.reason or e}") from None
    except OSError as e:
        raise CertificateError(f"cannot read {key}: {e.strerror}") from None
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(n.lower() for n in sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return ctx, Served(Path(cert), Path(key), names, leaf.serial_number)


class ServerCertificates:
    """The live context and the certificates SNI may choose instead of its own."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]]):
        default, served = self._load(pairs)
        self.context = server_context(default.cert, default.key)
        self.context.sni_callback = self._select
        self._apply(default, served)

    def reload(self, pairs: Sequence[tuple[Path, Path]]) -> None:
        """New handshakes use these; on any error nothing changes (CertificateError)."""
        default, served = self._load(pairs)
        # Checked above on a scratch context, so this cannot leave a half-loaded pair.
        self.context.load_cert_chain(default.cert, default.key)
        self._apply(default, served)

    @property
    def served(self) -> tuple[Served, ...]:
        return self._served

    @staticmethod
    def _load(pairs) -> tuple[Served, list[tuple[ssl.SSLContext, Served]]]:
        if not pairs:
            raise CertificateError("no certificate to serve")
        loaded = [load_pair(Path(c), Path(k)) for c, k in pairs]
        return loaded[0][1], loaded[1:]

    def _apply(self, default: Served, others: list[tuple[ssl.SSLContext, Served]]) -> None:
        by_name: dict[str, ssl.SSLContext | None] = dict.fromkeys(default.names)
        for ctx, s in others:
            for name in s.names:
                by_name.setdefault(name, ctx)        # the first listed wins a shared name
        self._by_name = by_name
        self._served = (default, *(s for _, s in others))

    def _select(self, ssl_object, server_name: str | None, _ctx) -> None:
        """The SNI callback: switch the handshake to the certificate naming server_name
        (exactly, else by a wildcard for its first label, RFC 6125 §6.4.3); the default
        answers anything else."""
        if not server_name:
            return None
        name = server_name.lower().rstrip(".")
        ctx = self._by_name.get(name)
        if ctx is None and "." in name:
            ctx = self._by_name.get("*." + name.split(".", 1)[1])
        if ctx is not None:
            ssl_object.context = ctx
        return None
