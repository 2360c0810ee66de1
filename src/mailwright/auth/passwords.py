"""Password storage: argon2id for PLAIN/LOGIN, SCRAM-SHA-256 keys for SCRAM.

Both are derived from the password when it is set; the password itself is
never stored. SCRAM (RFC 5802 §3) needs StoredKey/ServerKey, which an argon2
hash cannot give, hence the second, independent record.

The argon2 cost is a policy ([auth] argon2_*), set once per process by whoever opens
the store (app.open_store). Each hash records the parameters it was made with
(the PHC string "$argon2id$v=19$m=…,t=…,p=…$…"), so old hashes keep verifying and
are replaced at the next successful login (auth/verify.py) when the policy changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import argon2
from scramp import ScramMechanism

SCRAM_ITERATIONS = 4096      # RFC 7677 §4: at least 4096


@dataclass(frozen=True)
class Argon2Params:
    """RFC 9106 §4 recommends 2 GiB (or 64 MiB, 3 passes, 4 lanes) for one-off
    hashing; a server verifying logins all day cannot spend that on each. The default
    is OWASP's Password Storage Cheat Sheet minimum for argon2id — 19 MiB, 2 passes,
    1 lane — about 20 ms of one core, where argon2-cffi's default (64 MiB, t=3, p=4)
    took 84 ms of CPU per login (issue 20). The credential cache (auth/cache.py) spares
    most logins even that."""
    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1

    def hasher(self) -> argon2.PasswordHasher:
        return argon2.PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib,
                                     parallelism=self.parallelism, type=argon2.Type.ID)


_params = Argon2Params()
_hasher = _params.hasher()
_dummy: str | None = None
_scram = ScramMechanism("SCRAM-SHA-256")


def use(params: Argon2Params) -> None:
    """Hash new passwords with these parameters from now on (this process)."""
    global _params, _hasher, _dummy
    if params != _params:
        _params, _hasher, _dummy = params, params.hasher(), None


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


def needs_rehash(hashed: str) -> bool:
    """The hash was made with other parameters than the current policy's."""
    try:
        return _hasher.check_needs_rehash(hashed)
    except argon2.exceptions.InvalidHashError:
        return False


def scram_keys(password: str) -> ScramKeys:
    salt, stored_key, server_key, iterations = _scram.make_auth_info(
        password, iteration_count=SCRAM_ITERATIONS)
    return ScramKeys(salt, stored_key, server_key, iterations)


def dummy_hash() -> str:
    """A fixed hash to verify against when the user does not exist, made with the
    current policy, so that a login for an unknown user costs the same time as one
    for a known user."""
    global _dummy
    if _dummy is None:
        _dummy = _hasher.hash("mailwright-dummy-password")
    return _dummy


def password_keys(password: str) -> tuple[str, ScramKeys]:
    """What a store keeps of a password: the argon2id hash and the SCRAM keys."""
    return hash_password(password), scram_keys(password)
