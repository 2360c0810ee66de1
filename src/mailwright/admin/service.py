"""Admin: the one object the CLI and the HTTP API (api/) hold.

    admin = Admin(store, config)
    await admin.accounts.add("alice@example.com", password)  # -> Account
    await admin.queue.hold("0005f1...")                      # -> Rescheduled
    await admin.events.search(domain="example.com")          # -> SearchPage
    await admin.send(SendRequest(...), client_ip=ip)         # -> SendResult (needs parts)

Operations take plain values (strings as an admin types them, ints, None), check them,
call the store through its public methods and return dataclasses; a refusal is an
AdminError (Invalid, NotFound, Conflict) whose text says what to do. Nothing here
prints, parses arguments or exits. Every operation is a coroutine, as the store's
methods are: the HTTP API awaits them on its loop, the CLI runs one loop per command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from ..config import Config
from ..delivery.assemble import Parts
from ..dns import Resolver
from ..events.log import EventLog
from ..store.base import MailStore
from .accounts import Accounts
from .aliases import Aliases
from .apikeys import ApiKeys
from .certificates import Certificates
from .context import Context
from .demo import DemoAccount, ensure_demo
from .dkim import DkimKeys
from .dns import Dns
from .domains import Domains
from .events import Events
from .queue import Queue
from .send import Sender, SendRequest, SendResult
from .webhooks import Webhooks


class Admin:
    def __init__(self, store: MailStore, config: Config, resolver: Resolver | None = None,
                 clock: Callable[[], float] = time.time, events: EventLog | None = None,
                 parts: Parts | None = None):
        """events: the server's event log when the API runs in it; parts: what the
        delivery pipeline is built from (the server's, app.py); without them (the CLI)
        `send` is refused."""
        self.ctx = Context(store, config, clock, resolver, events)
        self.domains = Domains(self.ctx)
        self.accounts = Accounts(self.ctx)
        self.aliases = Aliases(self.ctx)
        self.dkim = DkimKeys(self.ctx)
        self.queue = Queue(self.ctx)
        self.dns = Dns(self.ctx)
        self.api_keys = ApiKeys(self.ctx)
        self.events = Events(self.ctx)
        self.webhooks = Webhooks(self.ctx)
        self.certificates = Certificates(self.ctx)
        self._sender = Sender(self.ctx, parts)

    async def ensure_demo(self) -> DemoAccount | None:
        return await ensure_demo(self.ctx)

    async def send(self, request: SendRequest, *, client_ip: str,
                   allowed_domains: Collection[str] | None = None) -> SendResult:
        """Submit a message as an authenticated SMTP client would (admin/send.py):
        from addresses of `allowed_domains` (None: any local domain)."""
        return await self._sender.send(request, client_ip=client_ip,
                                       allowed_domains=allowed_domains)
