"""Notice new certificate files: every worker process loads them into its own TLS
context (the primary issues them; `mailwright cert renew` may, from another process)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("mailwright")


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # A rename over the file (files.py writes so) changes the inode.
    return st.st_ino, st.st_mtime_ns, st.st_size


async def watch(path: Path, interval: float, changed: Callable[[], bool]) -> None:
    """Call changed() whenever path is replaced; it returns False when the new files
    could not be loaded (a pair caught half written), to be tried again next time."""
    seen = _identity(path)
    while True:
        await asyncio.sleep(interval)
        now = _identity(path)
        if now is not None and now != seen and changed():
            seen = now
