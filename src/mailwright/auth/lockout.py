"""Failed-authentication counter per client IP: growing delay, then lockout.

Shared by SMTP, IMAP and POP3 so that switching protocol does not reset the
count. The clock is injected so tests can drive time.

Counted in the process's memory; with several nodes also in a counter they share
(`shared`: the store's, store/cluster.py), told of every failure without waiting. A
lockout any node decides comes back through `lock` to every node's memory, so a
login's check stays a look in a dict and only failures write.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..config import AuthSettings


class SharedFailures(Protocol):
    """Failure counters every node shares (store/cluster.py Cluster has these)."""
    def note_failure(self, key: str, window: float, limit: int, lockout: float) -> None: ...
    def clear_failures(self, key: str) -> None: ...


class AuthLockout:
    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic,
                 shared: SharedFailures | None = None):
        self.settings = settings
        self.clock = clock
        self.shared = shared
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def _recent(self, ip: str, now: float) -> deque[float]:
        q = self._failures.get(ip)
        if q is None:
            return deque()
        while q and q[0] <= now - self.settings.failure_window:
            q.popleft()
        if not q:
            del self._failures[ip]
        return q

    def locked_for(self, ip: str) -> float:
        """Seconds this IP remains locked out (0 when it may try)."""
        until = self._locked_until.get(ip)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked_until[ip]
            return 0.0
        return left

    def record_failure(self, ip: str) -> float:
        """Count a failure; return the delay to impose before answering."""
        now = self.clock()
        if self.shared is not None:
            self.shared.note_failure(ip, self.settings.failure_window,
                                     self.settings.max_failures, self.settings.lockout)
        q = self._recent(ip, now)
        q.append(now)
        self._failures[ip] = q
        if len(q) >= self.settings.max_failures:
            self._locked_until[ip] = now + self.settings.lockout
            del self._failures[ip]
        if len(self._failures) > 100_000:      # bound memory under a spray attack
            for key in list(self._failures)[:50_000]:
                self._recent(key, now)
        return min(self.settings.failure_delay * 2 ** (len(q) - 1),
                   self.settings.failure_delay * 8)

    def record_success(self, ip: str) -> None:
        if self._failures.pop(ip, None) is not None and self.shared is not None:
            self.shared.clear_failures(ip)

    def lock(self, ip: str, seconds: float) -> None:
        """A lockout decided elsewhere (another node): this IP waits `seconds`."""
        self._locked_until[ip] = max(self._locked_until.get(ip, 0.0), self.clock() + seconds)
        self._failures.pop(ip, None)
