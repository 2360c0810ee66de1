"""Content-addressed message files: data_dir/blobs/ab/cd/<sha256>.

Files are written in batches: each is written to a temporary name and renamed
into place, then one syncfs(2) makes the whole batch durable (data and
directory entries) with a single journal commit, before the metadata that
refers to them is committed. That is group commit for files: per-file fsync
plus directory fsync would cost two journal commits per message. Where
syncfs is not available every file and directory is fsynced instead.

A blob name is referenced only by rows committed after that sync, so a crash
can leave unreferenced files (removed by a later sweep) but never a row
pointing at a partial file. Every accepted message carries a unique Received
header, so two deliveries never share a blob; one delivery's local copies do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# File creation latency dominates small writes (and varies a lot on shared
# disks); creating a batch's files from several threads overlaps it.
WRITE_THREADS = 8


def _load_syncfs():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_syncfs = _load_syncfs()


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = root / "tmp"
        self._tmp.mkdir(exist_ok=True)
        self._counter = itertools.count()      # unique temporary names (thread-safe in CPython)
        self._pool = ThreadPoolExecutor(WRITE_THREADS, "mailwright-blob")

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def write_batch(self, items: list[bytes]) -> list[str]:
        """Store every item durably; return their SHA-256 hex digests. Blocking."""
        if len(items) == 1:
            written = [self._write_one(items[0])]
        else:
            written = list(self._pool.map(self._write_one, items))
        self._sync([path for path, _ in written])
        return [digest for _, digest in written]

    def _write_one(self, data: bytes) -> tuple[Path, str]:
        digest = digest_of(data)
        final = self.path(digest)
        tmp = self._tmp / f"{digest}.{os.getpid()}.{next(self._counter)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if _syncfs is None:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, final)
        return final, digest

    def _sync(self, written: list[Path]) -> None:
        if _syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _syncfs(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"syncfs: {os.strerror(err)}")
            finally:
                os.close(fd)
            return
        for directory in ({p.parent for p in written} | {p.parent.parent for p in written}
                          | {self.root}):
            _fsync_dir(directory)

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def remove(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def clean_tmp(self) -> int:
        """Remove temporary files left by a crash mid-write (never referenced)."""
        n = 0
        for p in self._tmp.iterdir():
            p.unlink(missing_ok=True)
            n += 1
        return n


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
