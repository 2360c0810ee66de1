"""The key ring that signs tracking tokens (HMAC-SHA256, RFC 2104).

Keys come from `[campaigns] keys` ("ID:SECRET", base64url) or, when none are
configured, from data_dir/campaigns/keys: one "ID SECRET" line per key, made on first
use with a random 256-bit key and mode 0600. The first key signs; every key verifies,
so rotating is adding a new first line (`mailwright tracking rotate-key`) and removing
an old one once its mail is old enough. Each token names the id of its key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ...config import Config

KEY_FILE = Path("campaigns") / "keys"
# RFC 2104 §5: a truncated output of at least half the hash length (and 80 bits) is
# acceptable; 128 bits keeps links short and forgery out of reach.
MAC_SIZE = 16


class KeyRingError(Exception):
    """The key file cannot be read or is malformed (its path and line named)."""


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, bytes], ...]          # (id, secret), the first signs

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pads", {kid: _pads(secret) for kid, secret in self.keys})

    @property
    def current(self) -> str:
        return self.keys[0][0]

    def mac(self, payload: bytes, kid: str | None = None) -> bytes | None:
        """The MAC of payload under key `kid` (default: the signing key); None when
        no such key is known. HMAC-SHA256 from the hash states after the padded key
        blocks, computed once per key (RFC 2104 §4, implementation note): a newsletter
        copy signs hundreds of links, and each MAC costs less than half of
        hmac.digest's (tests/unit compare the two)."""
        pads = self._pads.get(kid or self.current)
        if pads is None:
            return None
        inner, outer = pads[0].copy(), pads[1].copy()
        inner.update(payload)
        outer.update(inner.digest())
        return outer.digest()[:MAC_SIZE]


def _pads(secret: bytes) -> tuple:
    """SHA-256 states after K XOR ipad and K XOR opad (RFC 2104 §2; a key longer than
    the 64-octet block is hashed first)."""
    key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
    key = key.ljust(_BLOCK, b"\0")
    return (hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


_BLOCK = 64                                  # SHA-256's block size, RFC 2104's B
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _b64(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load(config: Config) -> KeyRing:
    """The configured keys, else the data_dir key file (created if missing)."""
    if config.campaigns.keys:
        return KeyRing(tuple((kid, _unb64(secret)) for kid, _, secret in
                             (k.partition(":") for k in config.campaigns.keys)))
    path = config.data_dir / KEY_FILE
    if not path.exists():
        _write(path, [("1", secrets.token_bytes(32))], exclusive=True)
    return read(path)


def read(path: Path) -> KeyRing:
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise KeyRingError(f"{path}: cannot read: {e.strerror}") from None
    keys = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        kid, _, secret = line.strip().partition(" ")
        try:
            raw = _unb64(secret.strip())
        except ValueError:
            raw = b""
        if not kid.isalnum() or len(kid) > 8 or len(raw) < 32:
            raise KeyRingError(f"{path}:{n}: expected 'ID SECRET' (an id of 1-8 letters or "
                               f"digits, a base64url secret of at least 32 octets)")
        keys.append((kid, raw))
    if not keys:
        raise KeyRingError(f"{path}: no key")
    return KeyRing(tuple(keys))


def rotate(config: Config) -> str:
    """A new signing key first in the data_dir key file (the old ones still verify);
    its id. Running processes keep the ring they read: restart to sign with it."""
    if config.campaigns.keys:
        raise KeyRingError("the keys are set in the config ([campaigns] keys): add the new "
                           "key there, first")
    path = config.data_dir / KEY_FILE
    ring = load(config)
    kid = str(max((int(k) for k, _ in ring.keys if k.isdigit()), default=0) + 1)
    _write(path, [(kid, secrets.token_bytes(32)), *ring.keys], exclusive=False)
    return kid


def _write(path: Path, keys: list[tuple[str, bytes]], exclusive: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "".join(f"{kid} {_b64(secret)}\n" for kid, secret in keys)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)                  # O_CREAT's mode is filtered by the umask
    if exclusive:
        try:
            os.link(tmp, path)            # two processes starting at once: one key
        except FileExistsError:
            pass
        os.unlink(tmp)
    else:
        os.replace(tmp, path)


_RINGS: dict[tuple, KeyRing] = {}


def ring_for(config: Config) -> KeyRing:
    """The process's key ring for this config, read once (restart to pick up a new
    key: see `rotate`)."""
    key = (config.data_dir, config.campaigns.keys)
    ring = _RINGS.get(key)
    if ring is None:
        ring = _RINGS[key] = load(config)
    return ring
