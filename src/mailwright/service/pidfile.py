"""data_dir/mailwright.pid: the serving process (the supervisor when there are workers),
which `mailwright reload` sends SIGHUP to."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

NAME = "mailwright.pid"


class NotRunning(Exception):
    pass


def path(data_dir: Path) -> Path:
    return data_dir / NAME


def write(data_dir: Path) -> Path:
    target = path(data_dir)
    tmp = target.with_name(NAME + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, target)
    return target


def remove(data_dir: Path) -> None:
    """At exit, only our own: a newer server may have written its pid meanwhile."""
    with contextlib.suppress(OSError, ValueError):
        if int(path(data_dir).read_text()) == os.getpid():
            path(data_dir).unlink()


def running(data_dir: Path) -> int:
    """The pid of the running server, checked to be a Mailwright process (a stale file
    may name a pid the system gave to something else since)."""
    target = path(data_dir)
    try:
        pid = int(target.read_text().strip())
    except FileNotFoundError:
        raise NotRunning(f"no server is running: {target} does not exist") from None
    except (OSError, ValueError) as e:
        raise NotRunning(f"cannot read {target}: {e}") from None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raise NotRunning(f"no server is running: {target} names pid {pid}, which is gone"
                         ) from None
    if b"mailwright" not in cmdline:
        raise NotRunning(f"{target} names pid {pid}, which is not Mailwright (stale file)")
    return pid
