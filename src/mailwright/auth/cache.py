"""The credential cache: a password verified once is not run through argon2 again
for a while (Dovecot's auth_cache, with the same positive and negative TTLs).

A phone and a desktop reconnect all day, each IMAP connection logging in again; at
~20 ms of argon2 each, logins would fill a core long before mail does.

What is kept is not the password: an HMAC-SHA256 of it under a key made at random
when the process starts and never written anywhere, so a memory dump gives neither
the password nor anything an attacker can test guesses against without the key (and
with it, only at HMAC speed — the trade-off of any such cache, documented in the
README). Each entry is bound to the stored hash it was verified against: a password
change, a rehash or removing the account changes or removes that hash, so the entry
is never consulted again — in every worker at once, with no message between them.
The lockout is checked before the cache (auth/driver.py), so the cache never lets a
locked-out client in.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    digest: bytes
    ok: bool
    expires: float


class CredentialCache:
    def __init__(self, size: int, ttl: float, negative_ttl: float,
                 clock: Callable[[], float] = time.monotonic):
        self.size = size
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._key = os.urandom(32)
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def _digest(self, who: str, password: str) -> bytes:
        data = f"{who}\0{password}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def lookup(self, who: str, stored_hash: str, password: str) -> bool | None:
        """True: this password was verified against this stored hash within the TTL;
        False: it was found wrong within the negative TTL; None: not known."""
        key = (who, stored_hash)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            del self._entries[key]
            return None
        if not hmac.compare_digest(entry.digest, self._digest(who, password)):
            return None        # another password than the one remembered: verify it
        self._entries.move_to_end(key)
        return entry.ok

    def remember(self, who: str, stored_hash: str, password: str, ok: bool) -> None:
        ttl = self.ttl if ok else self.negative_ttl
        if self.size <= 0 or ttl <= 0:
            return
        key = (who, stored_hash)
        self._entries[key] = _Entry(self._digest(who, password), ok, self.clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
