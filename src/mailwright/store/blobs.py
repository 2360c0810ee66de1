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

Large messages never need to be whole in memory on the way in. While a message
arrives, a Spool keeps it in memory up to SPOOL_MEMORY octets, then moves it to
an unnamed temporary file in blobs/tmp (O_TMPFILE: a crash leaves nothing to
clean up) and appends every further piece there. What the session then stores
is a Spooled message: the header block and the trace fields it prepends in
memory, the rest a span of that file. Writing the blob streams it: the prefix,
then the span copied in 1 MiB slices, hashed as it is copied, into the blob's
temporary file, which is renamed to its digest and made durable by the batch's
syncfs like any other. (The trace fields are only known once the whole message
has been read, so the spool file cannot simply be renamed into place.) The
store does that copy in a thread as soon as a delivery starts (`prewrite`), reads
the blob back in one allocation for its IMAP parse, and leaves the writer thread
only the rename and the sync.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

# File creation latency dominates small writes (and varies a lot on shared
# disks); creating a batch's files from several threads overlaps it.
WRITE_THREADS = 8
# A message being received stays in memory up to this size, then goes to a file.
# Smaller ones would pay for a file creation (see store/sqlite/db.py INLINE_BLOB_MAX).
SPOOL_MEMORY = 256 * 1024
# Large blobs are copied and hashed in slices of this size.
COPY_SLICE = 1 << 20


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


class _SpoolFile:
    """An unnamed temporary file; closed (and its space freed) when the last
    reference goes: the session's, then the writer job's that copies it. No one
    closes it early, so a reader can never find the descriptor reused."""

    def __init__(self, directory: Path):
        try:
            self.fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (OSError, AttributeError):   # no O_TMPFILE here: a name, removed at once
            self.fd, name = tempfile.mkstemp(dir=directory)
            os.unlink(name)

    def __del__(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, data: bytes) -> None:
        _write_all(self.fd, data)

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        while length > 0:
            piece = os.pread(self.fd, min(length, COPY_SLICE), offset)
            if not piece:
                raise OSError(f"spool file ended {length} octets early")
            offset += len(piece)
            length -= len(piece)
            yield piece


@dataclass(frozen=True, eq=False)
class Spooled:
    """A message as octets in memory (`head`: its header block, and what was put in
    front of it) followed by a span of a spool file. `trace + spooled` prepends
    (a new Spooled; the file is shared); len() is the whole size."""
    head: bytes
    file: _SpoolFile
    offset: int
    length: int

    def __len__(self) -> int:
        return len(self.head) + self.length

    def __radd__(self, prefix: bytes) -> Spooled:
        return replace(self, head=bytes(prefix) + self.head)

    def with_head(self, head: bytes) -> Spooled:
        return replace(self, head=head)

    def slices(self) -> Iterator[bytes]:
        """The message in pieces of at most COPY_SLICE octets (after the head)."""
        if self.head:
            yield self.head
        yield from self.file.read(self.offset, self.length)

    def read(self) -> bytes:
        """The whole message in memory: only for the few who need it all at once
        (signatures, MIME parsing). Blocking: call it in a thread."""
        return b"".join(self.slices())


@dataclass(frozen=True, eq=False)
class Written:
    """A blob already written to its temporary file and hashed (BlobStore.prewrite):
    storing it is a rename. The file is removed if it never is."""
    tmp: Path
    digest: str
    size: int

    def __len__(self) -> int:
        return self.size

    def read(self) -> bytes:
        """The whole blob, read in one allocation (blocking)."""
        with open(self.tmp, "rb", buffering=0) as f:
            return f.readall()

    def __del__(self) -> None:
        self.tmp.unlink(missing_ok=True)      # renamed into place: nothing left here


Content = bytes | Spooled


def head_of(content: Content) -> bytes:
    """What holds the header: all of a message in memory, the head of a spooled one."""
    return content.head if isinstance(content, Spooled) else content


def whole(content: Content) -> bytes:
    """The message in memory (blocking for a spooled one: call it in a thread)."""
    return content.read() if isinstance(content, Spooled) else content


class Spool:
    """A message arriving piece by piece: in memory up to `memory` octets, then in
    an unnamed file in `directory` (None: memory only). A write error (disk full)
    is kept in `error` and the rest dropped; the session then answers 452."""

    def __init__(self, directory: Path | None, memory: int = SPOOL_MEMORY):
        self.directory = directory
        self.memory = memory
        self.size = 0
        self.error: OSError | None = None
        self._mem = bytearray()
        self._file: _SpoolFile | None = None
        self._head = b""          # header block, once spilled (b"": it did not end there)

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.error is not None:
            return
        try:
            if self._file is not None:
                self._file.write(data)
                return
            self._mem += data
            if len(self._mem) > self.memory and self.directory is not None:
                self._spill()
        except OSError as e:
            self.error = e

    def _spill(self) -> None:
        self._file = _SpoolFile(self.directory)
        self._file.write(self._mem)
        # The header block with its empty line, kept in memory for the checks that
        # read or edit the header (RFC 5322 §2.1: header, empty line, body).
        if self._mem.startswith(b"\r\n"):
            self._head = b"\r\n"
        elif (end := self._mem.find(b"\r\n\r\n")) >= 0:
            self._head = bytes(self._mem[:end + 4])
        self._mem = bytearray()

    def content(self) -> Content:
        """The message received: bytes, or a Spooled whose head is its header block.
        A header that did not end within the memory part (pathological) is read
        whole: blocking, so for a spilled spool call it in a thread."""
        if self._file is None:
            return bytes(self._mem)
        spooled = Spooled(self._head, self._file, len(self._head),
                          self.size - len(self._head))
        return spooled if self._head else spooled.read()


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

    def spool(self) -> Spool:
        return Spool(self._tmp)

    def write_batch(self, items: list[Content | Written]) -> list[str]:
        """Store every item durably; return their SHA-256 hex digests. Blocking."""
        if len(items) == 1:
            written = [self._write_one(items[0])]
        else:
            written = list(self._pool.map(self._write_one, items))
        self._sync([path for path, _ in written])
        return [digest for _, digest in written]

    def prewrite(self, content: Content) -> Written:
        """Write content to a temporary file now (blocking; the rename comes with
        the batch that stores it)."""
        tmp, digest = self._write_tmp(content)
        return Written(tmp, digest, len(content))

    def _write_one(self, content: Content | Written) -> tuple[Path, str]:
        if isinstance(content, Written):
            tmp, digest = content.tmp, content.digest
        else:
            tmp, digest = self._write_tmp(content)
        final = self.path(digest)
        try:
            os.rename(tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, final)
        return final, digest

    def _write_tmp(self, content: Content) -> tuple[Path, str]:
        """Write to a temporary name, hashing as we go (a spooled message is copied
        from its file a slice at a time); the file and the digest."""
        tmp = self._tmp / f"w.{os.getpid()}.{next(self._counter)}"
        h = hashlib.sha256()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for piece in content.slices() if isinstance(content, Spooled) else (content,):
                h.update(piece)
                _write_all(fd, piece)
            if _syncfs is None:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        return tmp, h.hexdigest()

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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
