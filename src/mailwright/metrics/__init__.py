"""Prometheus metrics: counters fed by the event log, gauges read at scrape time.

Two kinds of metric, each with its own way in:

- **Counted as things happen.** `Metrics.observe` is an `EventLog` observer
  (events/log.py): every event that is emitted passes through it, and the events it
  knows (connections, sessions, accepted and rejected messages, delivery outcomes,
  authentication failures) move a counter, a gauge or a histogram. No code elsewhere
  calls into metrics/; a new number comes from a new event (events/types.py) and a
  line here. The metrics are declared in observer.py; README.md lists them all.

- **Read at scrape time.** Some numbers are state, not steps: the queue's depth, the
  webhook outbox's backlog. They are read from the store when /metrics is fetched, by
  async callables registered by name with `Metrics.collectors` (collectors.py). The
  part of the program that owns the state registers its collector where it is built,
  metrics/ knows nothing of it:

      metrics.collectors.add("queue", queue_recipients(store.queue_depth))    # app.py

  and whoever adds the webhook outbox registers its backlog the same way, with a
  coroutine counting its `webhook_deliveries` rows by state:

      metrics.collectors.add("webhooks", webhook_backlog(store.webhook_backlog))

  (`queue_recipients` and `webhook_backlog` name the gauges here, beside the others;
  `gauge_by` makes any other "how many, by X" gauge, `Collectors.add` takes any
  callable returning prometheus_client metric families.) A collector that fails is
  logged and left out of that scrape; the rest are still served.

`render(metrics, accept)` (exposition.py) is what the HTTP layer serves: the text of
every metric, in the format the scraper's Accept header asks for.

Several processes (`workers = N`): each worker counts its own events, and one
process serves /metrics. prometheus_client's multiprocess mode joins them: every
process writes its values to memory-mapped files in `data_dir/metrics`
(processes.py `prepare`, called once before any worker is forked, empties it), and
the scrape sums the files of all processes, dead ones included, so a counter never
goes back when a worker is replaced; a dead worker's open-session gauge is removed
(`process_exited`, called by the supervisor). Without `prepare` (tests, tools that
embed an App) each `Metrics` has a registry of its own.

metrics/ sits just above events/ in the layers (beside auth/, net/, dns): of ours it
imports events/ only; the store never imports it (pyproject.toml's import contracts).
"""

from __future__ import annotations

from .collectors import Collectors, gauge_by, queue_recipients, webhook_backlog
from .exposition import render
from .observer import Metrics
from .processes import prepare, process_exited

__all__ = ["Collectors", "Metrics", "gauge_by", "prepare", "process_exited",
           "queue_recipients", "render", "webhook_backlog"]
