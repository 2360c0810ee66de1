"""The text /metrics serves: every counted metric and the scrape-time gauges."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from .observer import Metrics


class WorkerFiles(MultiProcessCollector):
    """The workers' value files, summed, leaving out a file caught being created: a
    worker starting (or restarting) creates its file empty and then sizes it, and
    prometheus_client cannot read it in between (struct.error) — the scrape would fail
    for a file that holds no values yet."""

    def collect(self):
        files = [f for f in glob.glob(os.path.join(self._path, "*.db"))
                 if _readable(f)]
        return self.merge(files, accumulate=True)


def _readable(path: str) -> bool:
    try:
        return os.path.getsize(path) >= 8      # the used-size header prometheus reads
    except OSError:                            # removed meanwhile (a worker's cleanup)
        return False


class _Scrape:
    """One scrape's collector: the counted metrics (summed over the processes'
    files, or this process's registry) and the families the collectors just read."""

    def __init__(self, counted, read: list[Metric]):
        self.counted = counted
        self.read = read

    def collect(self) -> Iterable[Metric]:
        yield from self.counted.collect()
        yield from self.read


async def render(metrics: Metrics, accept: str | None = None) -> tuple[bytes, str]:
    """(body, Content-Type) for a scrape. `accept` is the request's Accept header:
    OpenMetrics when it asks for it, else the Prometheus text format 0.0.4
    (prometheus_client's own negotiation)."""
    read = await metrics.collectors.collect()
    # registry=None: the collector is used directly, never registered anywhere.
    counted = WorkerFiles(None, path=metrics.directory) if metrics.directory \
        else metrics.registry
    encode, content_type = choose_encoder(accept or "")
    return encode(_Scrape(counted, read)), content_type
