"""What every admin operation works on: the store, the configuration, a clock, the
resolver (made on first use: only the DNS check needs one), and the event log (the
server's own when the HTTP API runs in it, so its observers see admin events too)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Config
from ..dns import Resolver
from ..events.log import EventLog
from ..store.base import MailStore


@dataclass
class Context:
    store: MailStore
    config: Config
    clock: Callable[[], float] = time.time
    _resolver: Resolver | None = field(default=None, repr=False)
    _events: EventLog | None = field(default=None, repr=False)

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:
            self._resolver = Resolver.from_settings(self.config.dns)
        return self._resolver

    @property
    def events(self) -> EventLog:
        if self._events is None:
            self._events = EventLog(self.store)
        return self._events
