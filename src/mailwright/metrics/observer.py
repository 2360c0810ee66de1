"""The metrics counted from events: declared here, moved by `Metrics.observe`.

Names follow the Prometheus conventions: the `mailwright_` prefix, `_total` on
counters, base units (seconds, bytes). Labels are few and bounded: a listener role,
a protocol, a delivery result, a rejection reason; never an address, an IP or a
message id, each of which would make a series per value. `_ByLabel` caps what an
unexpected label value can add (LABEL_VALUES_MAX).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..events.types import Event
from . import processes
from .collectors import Collectors

# Seconds from queueing to the final outcome: a delivery at once takes well under a
# second, a retried one the queue's first_retry (300 s) and more, a bounce after
# max_age 5 days.
DELAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400,
                 5 * 86400)
# Octets of accepted messages: 1 KiB to 64 MiB in steps of 4.
SIZE_BUCKETS = tuple(1024 * 4 ** n for n in range(9))

LABEL_VALUES_MAX = 64      # more values of one label than this are counted as "other"
OTHER = "other"


class _ByLabel:
    """A one-label metric's children by label value. prometheus_client's labels()
    checks and joins its arguments on every call (~1.5 us); a dict lookup is what an
    event should cost."""

    __slots__ = ("metric", "children")

    def __init__(self, metric):
        self.metric = metric
        self.children: dict[str, Any] = {}

    def __call__(self, value: str):
        child = self.children.get(value)
        if child is None:
            if len(self.children) >= LABEL_VALUES_MAX and value != OTHER:
                return self(OTHER)
            child = self.children[value] = self.metric.labels(value)
        return child


class Metrics:
    """This process's metrics and the scrape-time collectors. In multiprocess mode
    (processes.prepare ran) the values live in files that exposition.render sums;
    otherwise in `registry`, this instance's own."""

    def __init__(self) -> None:
        self.directory = processes.directory()
        self.registry = None if self.directory else CollectorRegistry()
        self.collectors = Collectors()
        r = self.registry
        self.connections = _ByLabel(Counter(
            "mailwright_connections_total", "Connections greeted, by listener role",
            ["role"], registry=r))
        self.refused = _ByLabel(Counter(
            "mailwright_connections_refused_total",
            "Connections refused by the connection limits, by listener role",
            ["role"], registry=r))
        # "livesum": the open sessions of running processes only (a dead worker's
        # sessions died with it: processes.process_exited).
        self.sessions = _ByLabel(Gauge(
            "mailwright_open_sessions", "Sessions open now, by protocol",
            ["protocol"], multiprocess_mode="livesum", registry=r))
        self.accepted = _ByLabel(Counter(
            "mailwright_messages_accepted_total",
            "Messages accepted (stored and/or queued), by listener role", ["role"],
            registry=r))
        self.size = Histogram(
            "mailwright_accepted_message_size_bytes", "Size of accepted messages",
            buckets=SIZE_BUCKETS, registry=r)
        self.rejected = _ByLabel(Counter(
            "mailwright_messages_rejected_total",
            "Recipients or messages refused, by reason", ["reason"], registry=r))
        self.deliveries = _ByLabel(Counter(
            "mailwright_deliveries_total",
            "Outbound delivery attempts per recipient, by result "
            "(delivered, deferred, bounced)", ["result"], registry=r))
        self.delay = _ByLabel(Histogram(
            "mailwright_delivery_delay_seconds",
            "Time from queueing to the final outcome of a queued recipient, by result "
            "(delivered, bounced)", ["result"], buckets=DELAY_BUCKETS, registry=r))
        self.auth_failures = _ByLabel(Counter(
            "mailwright_auth_failures_total", "Failed authentications, by protocol",
            ["protocol"], registry=r))
        self.auth_locked = _ByLabel(Counter(
            "mailwright_auth_locked_total",
            "Authentications refused because the client IP was locked out, by protocol",
            ["protocol"], registry=r))
        # The label values known in advance are made now: their series are there, at
        # 0, from the start (a series that appears later hides its first increase from
        # rate()), and their events skip even the dict lookup.
        smtp, imap, pop3 = (self.sessions(p) for p in ("smtp", "imap", "pop3"))
        deferred = self.deliveries("deferred")
        for protocol in ("smtp", "imap", "pop3"):
            self.auth_failures(protocol)
            self.auth_locked(protocol)
        self._handlers: dict[Event, Callable[[dict], None]] = {
            Event.SMTP_CONNECT: self._smtp_connect,
            Event.SMTP_DISCONNECT: lambda data: smtp.dec(),
            Event.IMAP_CONNECT: self._imap_connect,
            Event.IMAP_DISCONNECT: lambda data: imap.dec(),
            Event.POP3_CONNECT: self._pop3_connect,
            Event.POP3_DISCONNECT: lambda data: pop3.dec(),
            Event.REFUSED: lambda data: self.refused(data["role"]).inc(),
            Event.ACCEPTED: self._accepted,
            Event.REJECTED: lambda data: self.rejected(data["reason"]).inc(),
            Event.DELIVERED: self._final_outcome("delivered"),
            Event.BOUNCED: self._final_outcome("bounced"),
            Event.DEFERRED: lambda data: deferred.inc(),
            Event.AUTH_FAIL: lambda data: self.auth_failures(data["protocol"]).inc(),
            Event.AUTH_LOCKED: lambda data: self.auth_locked(data["protocol"]).inc(),
        }

    def observe(self, event: Event, session: str | None, message_id: str | None,
                data: dict[str, Any]) -> None:
        """The EventLog observer: one dict lookup for events that count nothing."""
        handle = self._handlers.get(event)
        if handle is not None:
            handle(data)

    def _smtp_connect(self, data: dict) -> None:
        self.connections(data["role"]).inc()
        self.sessions("smtp").inc()

    # IMAP and POP3 sessions do not know their listener, but its role follows from TLS
    # at the greeting: imaps and pop3s speak TLS from the first byte (RFC 8314 §3), imap
    # and pop3 greet in plaintext (STARTTLS / STLS come later).
    def _imap_connect(self, data: dict) -> None:
        self.connections("imaps" if data["tls"] else "imap").inc()
        self.sessions("imap").inc()

    def _pop3_connect(self, data: dict) -> None:
        self.connections("pop3s" if data["tls"] else "pop3").inc()
        self.sessions("pop3").inc()

    def _accepted(self, data: dict) -> None:
        self.accepted(data.get("role") or "unknown").inc()
        self.size.observe(data["size"])

    def _final_outcome(self, result: str) -> Callable[[dict], None]:
        deliveries, delay = self.deliveries(result), self.delay(result)

        def handle(data: dict) -> None:
            deliveries.inc()
            if "delay" in data:
                delay.observe(data["delay"])
        return handle
