"""Scrape-time collectors: numbers that are state (how many are waiting), read when
/metrics is fetched rather than counted as they change.

A collector is an async callable returning prometheus_client metric families; each is
registered under a name by the part of the program that owns the state it reads (see
the package docstring). They run on the serving process's event loop, one after the
other, so each should be one cheap query.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger("mailwright.metrics")

Collect = Callable[[], Awaitable[Iterable[Metric]]]


class Collectors:
    """The scrape-time collectors, by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Collect] = {}

    def add(self, name: str, collect: Collect) -> None:
        if name in self._by_name:
            raise ValueError(f"a metrics collector named {name!r} is already registered")
        self._by_name[name] = collect

    async def collect(self) -> list[Metric]:
        families: list[Metric] = []
        for name, collect in self._by_name.items():
            try:
                families.extend(await collect())
            except Exception as e:  # one unreadable source must not empty the scrape
                log.warning("metrics collector %s failed: %s", name, e)
        return families


def gauge_by(name: str, documentation: str, label: str,
             read: Callable[[], Awaitable[Mapping[str, float]]],
             always: Iterable[str] = ()) -> Collect:
    """A collector of one gauge with one label: `read()` gives the value per label
    value. Label values in `always` are reported as 0 when `read` has none, so their
    series do not vanish from the scrape while they are empty."""
    always = tuple(always)

    async def collect() -> list[Metric]:
        values = dict.fromkeys(always, 0.0)
        values.update(await read())
        family = GaugeMetricFamily(name, documentation, labels=[label])
        for value, amount in sorted(values.items()):
            family.add_metric([value], amount)
        return [family]
    return collect


def queue_recipients(read: Callable[[], Awaitable[Mapping[str, float]]],
                     states: Iterable[str] = ()) -> Collect:
    """The outbound queue's depth: queued recipients by state (store.queue_depth)."""
    return gauge_by("mailwright_queue_recipients",
                    "Recipients in the outbound queue, by state", "state", read, states)


def webhook_backlog(read: Callable[[], Awaitable[Mapping[str, float]]],
                    states: Iterable[str] = ()) -> Collect:
    """Webhook deliveries in the outbox by state (registered by whoever owns webhooks)."""
    return gauge_by("mailwright_webhook_backlog",
                    "Webhook deliveries in the outbox, by state", "state", read, states)
