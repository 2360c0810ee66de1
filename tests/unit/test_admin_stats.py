"""admin.stats on a real store of each backend: events counted into the right hourly and daily
buckets (edges belong to the later bucket, UTC days), empty buckets as zeros, the
received/sent split by listener role, the domain filter, and the 24-hour summary."""

from __future__ import annotations

import asyncio
import calendar

import pytest

from mailwright.admin import Admin, Invalid
from mailwright.admin.stats import SERIES
from mailwright.config import parse
from mailwright.events.log import EventRow
from mailwright.store.events import Buckets
from mailwright.store.messages import Delivery
from mailwright.store.queue import RemoteRecipient
from mailwright.store.sqlite import SQLiteStore
from mailwright.store.sqlite.events import count_sql

from .stored import config_text, written

NOW = calendar.timegm((2027, 1, 15, 8, 20, 0))       # 08:20 UTC
HOUR, DAY = 3600, 86400
HOUR_END = calendar.timegm((2027, 1, 15, 9, 0, 0))  # the end of the current hour
MIDNIGHT = calendar.timegm((2027, 1, 15, 0, 0, 0))  # today's start, UTC


@pytest.fixture
def admin(make_store):
    store = make_store()
    return Admin(store, parse(config_text(store)), clock=lambda: NOW)


def record(admin, rows: list[EventRow]) -> None:
    for row in rows:
        admin.ctx.store.record_event(row)
    written(admin.ctx.store)


def ev(ts: float, type: str = "delivered", **data) -> EventRow:
    return EventRow.of(ts, type, None, None, data)


def accepted(ts: float, role: str | None, domain: str = "example.test") -> EventRow:
    data = dict(ip="192.0.2.1", size=10, mail_from=f"a@{domain}", rcpts=1, local=1,
                remote=0, account="", tls="", domain=domain)
    if role is not None:
        data["role"] = role
    return ev(ts, "accepted", **data)


def traffic(admin, span="24h", domain=None):
    return asyncio.run(admin.stats.traffic(span, domain))


def test_hourly_buckets_edges_and_zeros(admin):
    start = HOUR_END - DAY
    record(admin, [
        ev(start - 0.001, rcpt="x@far.test"),              # before the first bucket
        ev(start, rcpt="x@far.test"),                      # first bucket's first instant
        ev(start + HOUR - 0.001, rcpt="x@far.test"),       # still the first bucket
        ev(start + HOUR, rcpt="x@far.test"),               # the second bucket's start
        ev(NOW, rcpt="x@far.test"),                        # the current hour, the last
        ev(HOUR_END - 0.001, rcpt="x@far.test"),           # the current hour's end
        ev(HOUR_END, rcpt="x@far.test"),                   # the next hour: not yet shown
        ev(NOW, "deferred", rcpt="x@far.test"),
        ev(NOW - 2 * HOUR, "bounced", rcpt="x@far.test"),
        ev(NOW, "rejected", reason="unknown-user"),
        ev(NOW, "smtp-connect", ip="192.0.2.1", role="mx", tls=""),   # counted nowhere
    ])
    t = traffic(admin)
    assert (t.start, t.step) == (start, HOUR)
    assert t.types == ("received", "sent", "delivered", "deferred", "bounced", "rejected")
    assert set(t.counts) == set(t.types)
    assert all(len(c) == 24 for c in t.counts.values())
    assert t.counts["delivered"] == (2, 1) + (0,) * 21 + (2,)
    assert t.counts["deferred"] == (0,) * 23 + (1,)
    assert t.counts["bounced"] == (0,) * 21 + (1, 0, 0)
    assert t.counts["rejected"] == (0,) * 23 + (1,)
    assert t.counts["received"] == t.counts["sent"] == (0,) * 24


def test_daily_buckets_follow_utc_midnight(admin):
    record(admin, [
        ev(MIDNIGHT - 0.5, rcpt="x@far.test"),                  # yesterday, 23:59:59.5
        ev(MIDNIGHT, rcpt="x@far.test"),                        # today
        ev(MIDNIGHT - 29 * DAY, rcpt="x@far.test"),             # the first day shown
        ev(MIDNIGHT - 29 * DAY - 1, rcpt="x@far.test"),         # 30 days back: out
    ])
    t = traffic(admin, "30d")
    assert (t.start, t.step) == (MIDNIGHT - 29 * DAY, DAY)
    assert t.counts["delivered"] == (1,) + (0,) * 27 + (1, 1)
    assert t.buckets == 30


def test_received_and_sent_by_listener_role(admin):
    record(admin, [
        accepted(NOW, "mx"), accepted(NOW, "mx"),
        accepted(NOW, "submission"), accepted(NOW - HOUR, "submissions"),
        accepted(NOW, None),          # no role recorded: neither received nor sent
    ])
    t = traffic(admin)
    assert t.counts["received"][-1] == 2
    assert t.counts["sent"][-2:] == (1, 1)


def test_domain_filter(admin):
    record(admin, [
        accepted(NOW, "mx", "one.test"), accepted(NOW, "mx", "two.test"),
        ev(NOW, rcpt="x@one.test"), ev(NOW, rcpt="y@two.test"), ev(NOW, rcpt="z@two.test"),
    ])
    one = traffic(admin, domain="ONE.test")             # canonical form, as stored
    assert (one.counts["received"][-1], one.counts["delivered"][-1]) == (1, 1)
    two = traffic(admin, domain="two.test")
    assert (two.counts["received"][-1], two.counts["delivered"][-1]) == (1, 2)
    assert traffic(admin, domain="three.test").counts["delivered"] == (0,) * 24
    assert traffic(admin).counts["delivered"][-1] == 3


@pytest.mark.parametrize("span", ["1h", "", "24H", "7d"])
def test_unknown_span_is_refused(admin, span):
    with pytest.raises(Invalid, match=f"invalid span {span!r}: one of 24h, 30d"):
        traffic(admin, span)


def test_invalid_domain_is_refused(admin):
    with pytest.raises(Invalid, match="invalid domain 'not a domain'"):
        traffic(admin, domain="not a domain")


def test_summary(admin):
    reasons = ["unknown-user"] * 5 + ["relay-denied"] * 3 + ["spf"] * 3 + \
        [f"r{i:02}" for i in range(12)]
    record(admin, [
        *(ev(NOW - 60, rcpt="x@far.test") for _ in range(3)),
        ev(NOW - 60, "bounced", rcpt="x@far.test"),
        ev(NOW - 60, "deferred", rcpt="x@far.test"),        # not an outcome
        ev(NOW - DAY - 1, rcpt="x@far.test"),                 # older than 24 h
        ev(NOW - DAY - 1, "rejected", reason="spf"),
        *(ev(NOW - 10, "rejected", reason=r, rcpt="u@example.test") for r in reasons),
    ])
    if not hasattr(admin.ctx.store, "queue_messages"):
        pytest.skip("this backend has no queue yet")
    asyncio.run(admin.ctx.store.deliver(Delivery(
        message_id="Q1", mail_from="alice@example.test",
        remote=[RemoteRecipient("x@far.test"), RemoteRecipient("y@near.test")],
        relay_content=b"Subject: q\r\n\r\nx\r\n")))
    s = asyncio.run(admin.stats.summary())
    assert (s.queue_size, s.delivered, s.failed) == (2, 3, 1)
    assert s.success_rate == 0.75
    # Most frequent first, ties by name; ten at most.
    assert s.top_rejections == (("unknown-user", 5), ("relay-denied", 3), ("spf", 3),
                                *((f"r{i:02}", 1) for i in range(7)))
    assert asyncio.run(admin.stats.summary("example.test")).queue_size == 2
    assert asyncio.run(admin.stats.summary("far.test")).queue_size == 0


def test_summary_with_nothing_attempted(admin):
    if not hasattr(admin.ctx.store, "queue_depth"):
        pytest.skip("this backend has no queue yet")
    s = asyncio.run(admin.stats.summary())
    assert s == type(s)(0, 0, 0, None, ())


@pytest.mark.parametrize("domain", [None, "example.test"])
def test_counts_are_read_from_the_index_alone(admin, domain):
    """Each count is a range of events_traffic, never the table: what keeps a 30-day
    dashboard over a million events fast (bench/event_stats.py)."""
    if not isinstance(admin.ctx.store, SQLiteStore):
        pytest.skip("reads SQLite's query plan")
    record(admin, [accepted(NOW, "mx"), ev(NOW, rcpt="x@far.test")])
    sql, args = count_sql(SERIES, Buckets(NOW - DAY, HOUR, 24), domain)
    plan = [row[3] for row in admin.ctx.store.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
    searches = [step for step in plan if "events" in step]
    assert len(searches) == len(SERIES), plan
    assert all(step.startswith("SEARCH events USING COVERING INDEX events_traffic "
                               "(type=? AND ts>? AND ts<?)") for step in searches), plan
