"""sd_notify: tell systemd (Type=notify) that the server is ready, reloading, stopping.

The protocol is one datagram of newline-separated KEY=VALUE lines to the unix socket
named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace); see
sd_notify(3). Without that variable (not started by systemd) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("mailwright")

ENV = "NOTIFY_SOCKET"


class Notifier:
    def __init__(self, address: str | None):
        self.address = address

    @classmethod
    def from_environment(cls) -> Notifier:
        """The manager's socket, taken out of the environment so that the worker
        processes (and anything else we start) cannot send in our name."""
        return cls(os.environ.pop(ENV, None) or None)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(fields).encode(), target)
        except OSError as e:   # the manager went away: serving matters more than telling it
            log.warning("sd_notify to %s failed: %s", self.address, e)

    def ready(self) -> None:
        self.send("READY=1", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        # systemd ≥ 253 (Type=notify-reload) wants the monotonic time of the request.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")


DISABLED = Notifier(None)
