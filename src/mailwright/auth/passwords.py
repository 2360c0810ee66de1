"""Password storage: argon2id for PLAIN/LOGIN, SCRAM-SHA-256 keys for SCRAM.

Both are derived from the password when it is set; the password itself is
never stored. SCRAM (RFC 5802 §3) needs StoredKey/ServerKey, which an argon2
hash cannot give, hence the second, independent record.
"""

from __future__ import annotations

from dataclasses import dataclass

import argon2
from scramp import ScramMechanism

SCRAM_ITERATIONS = 4096      # RFC 7677 §4: at least 4096

_hasher = argon2.PasswordHasher()   # argon2id (RFC 9106) with the library's defaults
_scram = ScramMechanism("SCRAM-SHA-256")


@dataclass(frozen=True)
class ScramKeys:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


@dataclass(frozen=True)
class Credentials:
    """What the store knows about an account, for authentication (here, not with
    the SASL mechanisms, so the store that hands them out needs no protocol code)."""
    account: str               # canonical address of the account
    password_hash: str
    scram: ScramKeys


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def scram_keys(password: str) -> ScramKeys:
    salt, stored_key, server_key, iterations = _scram.make_auth_info(
        password, iteration_count=SCRAM_ITERATIONS)
    return ScramKeys(salt, stored_key, server_key, iterations)


# A fixed hash to verify against when the user does not exist, so that a
# login for an unknown user costs the same time as one for a known user.
DUMMY_HASH = _hasher.hash("mailwright-dummy-password")
