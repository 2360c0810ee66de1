"""A remote SMTP server for the e2e tests: aiosmtpd on 127.0.0.1, reached through a
[[transports]] entry, refusing the recipients a rule names and keeping every envelope
it takes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from aiosmtpd.controller import Controller

from ..conftest import free_port


class Peer:
    def __init__(self, refuse: Callable[[str], str | None] = lambda address: None):
        """refuse(address): the reply refusing that recipient ("550 5.1.1 ..."), or None."""
        self.refuse = refuse
        self.received: list = []           # aiosmtpd Envelopes, in order
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append(envelope)
        return "250 2.0.0 taken"

    def got(self, rcpt: str) -> list:
        """The envelopes that named rcpt."""
        with self.lock:
            return [e for e in self.received if rcpt in e.rcpt_tos]

    def transport(self, domain: str) -> str:
        """The config lines routing a domain's mail here."""
        return (f'[[transports]]\ndomain = "{domain}"\nhost = "127.0.0.1"\n'
                f'port = {self.controller.port}\ntls = "none"\n')


def running(peer: Peer) -> Iterator[Peer]:
    """For a fixture: the peer, serving while the fixture lives."""
    peer.controller.start()
    try:
        yield peer
    finally:
        peer.controller.stop()
