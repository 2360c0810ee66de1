"""DKIM key management: generate RSA-2048 and Ed25519 key pairs, keep the private
halves under data_dir/dkim/<domain>/, and give the TXT records to publish.

A key set has a name and two selectors, <name>-rsa and <name>-ed25519: receivers
that know Ed25519 (RFC 8463) check that signature, the rest check RSA (RFC 8301
asks for 2048 bits). Rotation: generate a new set, publish it, activate it; the
old set stays published (and in `dns records`) until it is retired. The rules of
rotation (names, which set signs) are admin/dkim.py's; this module makes the keys.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..store.base import MailStore
from ..store.directory import DKIMKeyInfo
from .dkim import SigningKey

ALGORITHMS = (("rsa", "rsa-sha256"), ("ed25519", "ed25519-sha256"))


def _rsa_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def _ed25519_pair() -> tuple[bytes, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    # RFC 8463 §4.2: p= is the base64 of the raw 32-octet public key.
    return base64.b64encode(seed) + b"\n", \
        f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"


def write_key_set(directory: Path, domain: str, name: str, active: bool,
                  now: float) -> list[DKIMKeyInfo]:
    """Make the key pairs of a set and write their private halves to
    directory/<selector>.key (mode 0600, never over an existing file); what to record."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for suffix, algorithm in ALGORITHMS:
        private, txt = _rsa_pair() if suffix == "rsa" else _ed25519_pair()
        path = directory / f"{name}-{suffix}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        keys.append(DKIMKeyInfo(domain, name, f"{name}-{suffix}", algorithm, str(path), txt,
                                active, now))
    return keys


def delete_key_files(paths: list[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


async def signing_keys(store: MailStore, domain: str) -> list[SigningKey]:
    """The active key set of a domain, ready for dkim.sign ([] when it has none)."""
    out = []
    for k in await store.dkim_keys(domain):
        if k.active:
            try:
                private = Path(k.path).read_bytes()
            except OSError:
                continue                   # reported by `mailwright dns check`
            if k.algorithm.startswith("ed25519"):
                private = private.strip()
            out.append(SigningKey(k.domain, k.selector, k.algorithm, private))
    return out


def txt_strings(txt: str) -> list[str]:
    """A TXT value in DNS character-strings of at most 255 octets (RFC 1035 §3.3.14)."""
    return [txt[i:i + 255] for i in range(0, len(txt), 255)]
