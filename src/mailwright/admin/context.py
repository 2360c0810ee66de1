"""What every admin operation works on: the store, the configuration, a clock, and the
resolver (made on first use: only the DNS check needs one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Config
from ..dns import Resolver
from ..store.base import MailStore


@dataclass
class Context:
    store: MailStore
    config: Config
    clock: Callable[[], float] = time.time
    _resolver: Resolver | None = field(default=None, repr=False)

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:
            self._resolver = Resolver.from_settings(self.config.dns)
        return self._resolver
