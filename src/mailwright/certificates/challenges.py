"""HTTP-01 key authorizations (RFC 8555 §8.3) as files: one per token in
data_dir/acme/challenges, written before the challenge is answered and removed after.
Files rather than memory because the issuing process (the primary worker, or
`mailwright cert renew`) need not be the one serving the http listener."""

from __future__ import annotations

import re
from pathlib import Path

from ..net.tls import write_atomic

# RFC 8555 §8.1: a token is base64url (RFC 4648 §5) without padding; anything else
# (a "/" or "..") is not a token, and never becomes a path.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def publish(directory: Path, token: str, key_authorization: str) -> Path:
    if not TOKEN.fullmatch(token):
        raise ValueError(f"not an ACME token: {token!r}")
    path = directory / token
    write_atomic(path, key_authorization.encode("ascii"), 0o644)
    return path


def withdraw(directory: Path, token: str) -> None:
    if TOKEN.fullmatch(token):
        (directory / token).unlink(missing_ok=True)


def lookup(directory: Path, token: str) -> bytes | None:
    """The key authorization to answer for token, or None."""
    if not TOKEN.fullmatch(token):
        return None
    try:
        return (directory / token).read_bytes()
    except OSError:
        return None
