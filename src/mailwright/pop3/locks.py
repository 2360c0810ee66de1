"""POP3 maildrop locks (RFC 1939 §8: one session per maildrop), shared by processes.

An exclusive flock(2) on data_dir/locks/<hash>: held by one open file in the
whole machine, whichever worker process took it, and released by the kernel if
that process dies, so a crash never leaves a maildrop locked.

With several nodes on one store the lock must hold across machines: the store's
exclusive lock (store/cluster.py; PostgreSQL: a session-level advisory lock, gone
with its process's database session) does it instead (ClusterMaildropLocks).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from ..store.cluster import Cluster


class MaildropLocks:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._held: dict[str, int] = {}

    def _path(self, account: str) -> Path:
        return self.directory / hashlib.sha256(account.lower().encode()).hexdigest()[:32]

    async def acquire(self, account: str) -> bool:
        if account in self._held:
            return False
        fd = os.open(self._path(account), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[account] = fd
        return True

    def release(self, account: str) -> None:
        fd = self._held.pop(account, None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __contains__(self, account: str) -> bool:
        """Held by this process (for tests and diagnostics)."""
        return account in self._held


class ClusterMaildropLocks:
    """The same, for every node of a cluster: the store's exclusive lock per account."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self._held: set[str] = set()

    @staticmethod
    def _name(account: str) -> str:
        return f"maildrop:{account.lower()}"

    async def acquire(self, account: str) -> bool:
        if not await self.cluster.try_exclusive(self._name(account)):
            return False
        self._held.add(account)
        return True

    def release(self, account: str) -> None:
        if account in self._held:
            self._held.discard(account)
            self.cluster.release_exclusive(self._name(account))

    def __contains__(self, account: str) -> bool:
        return account in self._held
