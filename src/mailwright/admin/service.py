"""Admin: the one object the CLI and the HTTP API (api/) hold.

    admin = Admin(store, config)
    await admin.accounts.add("alice@example.com", password)  # -> Account
    await admin.queue.hold("0005f1...")                      # -> Rescheduled
    await admin.events.search(domain="example.com")          # -> SearchPage
    await admin.stats.traffic("24h")                         # -> Traffic
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

from ..auth.lockout import AuthLockout
from ..config import Config
from ..delivery.assemble import Parts
from ..dns import Resolver
from ..events.log import EventLog
from ..store.base import MailStore
from .accounts import Accounts
from .admins import Admins
from .aliases import Aliases
from .apikeys import ApiKeys
from .campaigns import Campaigns
from .certificates import Certificates
from .check import Checks
from .clients import MailClients
from .context import Context
from .demo import DemoAccount, ensure_demo
from .dkim import DkimKeys
from .dns import Dns
from .domains import Domains
from .events import Events
from .queue import Queue
from .send import Sender, SendRequest, SendResult
from .stats import Stats
from .suppressions import Suppressions
from .tracking import Tracking
from .webhooks import Webhooks


class Admin:
    def __init__(self, store: MailStore, config: Config, resolver: Resolver | None = None,
                 clock: Callable[[], float] = time.time, events: EventLog | None = None,
                 parts: Parts | None = None, lockout: AuthLockout | None = None):
        """events: the server's event log when the API runs in it; parts: what the
        delivery pipeline is built from (the server's, app.py); without them (the CLI)
        `send` is refused; lockout: the server's failed-authentication counter, which
        web admin logins share with mail authentication."""
        self.ctx = Context(store, config, clock, resolver, events)
        self.domains = Domains(self.ctx)
        self.accounts = Accounts(self.ctx)
        self.aliases = Aliases(self.ctx)
        self.dkim = DkimKeys(self.ctx)
        self.queue = Queue(self.ctx)
        self.dns = Dns(self.ctx)
        self.check = Checks(self.ctx)
        self.api_keys = ApiKeys(self.ctx)
        self.events = Events(self.ctx)
        self.webhooks = Webhooks(self.ctx)
        self.admins = Admins(self.ctx, lockout)
        self.stats = Stats(self.ctx)
        self.clients = MailClients(self.ctx)
        self.suppressions = Suppressions(self.ctx)
        self.campaigns = Campaigns(self.ctx)
        self.tracking = Tracking(self.ctx, self.suppressions.add)
        self.certificates = Certificates(self.ctx)
        self._sender = Sender(self.ctx, parts)

    async def ensure_demo(self) -> DemoAccount | None:
        return await ensure_demo(self.ctx, self.admins)

    async def send(self, request: SendRequest, *, client_ip: str,
                   allowed_domains: Collection[str] | None = None,
                   campaigns: bool = False) -> SendResult:
        """Submit a message as an authenticated SMTP client would (admin/send.py):
        from addresses of `allowed_domains` (None: any local domain); `campaigns`: the
        caller sends campaign mail (an API key made so), tracked as README "Campaigns"."""
        return await self._sender.send(request, client_ip=client_ip,
                                       allowed_domains=allowed_domains, campaigns=campaigns)
