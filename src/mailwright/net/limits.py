"""Connection limits: total and per client IP (checked when a connection arrives)."""

from __future__ import annotations

from collections import Counter


class ConnectionLimiter:
    def __init__(self, max_total: int, max_per_ip: int):
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.total = 0
        self.per_ip: Counter[str] = Counter()

    def acquire(self, ip: str) -> str | None:
        """Count a new connection; return why it is refused, or None."""
        if self.total >= self.max_total:
            return "Too many connections, try again later"
        if self.per_ip[ip] >= self.max_per_ip:
            return "Too many connections from your address, try again later"
        self.total += 1
        self.per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]
