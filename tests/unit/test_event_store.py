"""The event table on a real store of each backend: search (every filter, newest first, pages that
neither skip nor repeat a row) checked against a plain Python model of the same rows,
and pruning that deletes exactly the rows past their domain's cutoff, a batch per
transaction."""

from __future__ import annotations

import asyncio
import random

import pytest

from mailwright.events.log import EventRow
from mailwright.store.events import EventQuery
from mailwright.store.sqlite import SQLiteStore

from .stored import event_ids, record

NOW = 1_800_000_000.0
DAY = 86400.0
TYPES = ("accepted", "delivered", "rejected", "smtp-connect")
DOMAINS = ("a.test", "b.test", "c.test", "other.test", None)


@pytest.fixture
def store(make_store):
    return make_store()


def row(ts: float, type: str = "accepted", domain: str | None = None, local: str = "u",
        message_id: str | None = None, tag: str | None = None) -> EventRow:
    data = {"rcpt": f"{local}@{domain}"} if domain else {"ip": "127.0.0.1"}
    if tag:
        data["tag"] = tag
    return EventRow.of(ts, type, "S1", message_id, data)


def model_rows(rng: random.Random, n: int) -> list[EventRow]:
    # Timestamps out of insertion order, with ties: the order is by ts, not by id.
    stamps = [NOW - rng.choice([0, 1, 2, 3]) * 3600 - rng.randrange(50) for _ in range(n)]
    return [row(ts, rng.choice(TYPES), rng.choice(DOMAINS), rng.choice("uvw"),
                rng.choice([None, "M1", "M2", "M3"]), rng.choice([None, None, "spring"]))
            for ts in stamps]


def matches(q: EventQuery, r: EventRow) -> bool:
    return ((q.since is None or r.ts >= q.since) and (q.until is None or r.ts < q.until)
            and (not q.types or r.type in q.types)
            and all(v is None or getattr(r, k) == v for k, v in (
                ("message_id", q.message_id), ("address", q.address),
                ("domain", q.domain), ("tag", q.tag))))


def walk(store, q: EventQuery) -> list[int]:
    """Every page of a search, the ids in the order given."""
    seen: list[int] = []
    for _ in range(1000):
        page = asyncio.run(store.search_events(q))
        assert len(page.events) <= q.limit
        seen += [e.id for e in page.events]
        if page.next is None:
            return seen
        q = EventQuery(**{**q.__dict__, "before": page.next})
    raise AssertionError("pages never ended")


def test_search_matches_a_model_of_every_filter_and_pages_exactly(store):
    rng = random.Random(15)
    rows = model_rows(rng, 400)
    ids = record(store, rows)
    queries = [EventQuery(limit=7), EventQuery(domain="a.test", limit=5),
               EventQuery(address="v@b.test", limit=3), EventQuery(tag="spring", limit=9),
               EventQuery(message_id="M2", limit=4),
               EventQuery(types=("rejected", "delivered"), limit=11),
               EventQuery(since=NOW - 2 * 3600, limit=6),
               EventQuery(until=NOW - 3600, limit=13),
               EventQuery(since=NOW - 3 * 3600, until=NOW - 3600, domain="c.test", limit=2),
               EventQuery(domain="a.test", types=("accepted",), tag="spring", limit=1),
               EventQuery(address="nobody@nowhere.test")]
    for q in queries:
        expected = sorted((i for i, r in zip(ids, rows, strict=True) if matches(q, r)),
                          key=lambda i: (rows[ids.index(i)].ts, i), reverse=True)
        assert walk(store, q) == expected, q
    assert any(walk(store, q) for q in queries[1:6])        # the filters do select rows


def test_search_rows_carry_every_column(store):
    [i] = record(store, [row(NOW, "delivered", "a.test", "Bob", "M9", "spring")])
    page = asyncio.run(store.search_events(EventQuery(message_id="M9")))
    [e] = page.events
    assert (e.id, e.ts, e.type, e.session, e.message_id, e.address, e.domain, e.tag) == (
        i, NOW, "delivered", "S1", "M9", "bob@a.test", "a.test", "spring")
    assert e.data == {"rcpt": "Bob@a.test", "tag": "spring"} and page.next is None


def test_since_is_inclusive_until_exclusive(store):
    a, b, c = record(store, [row(NOW - 2), row(NOW - 1), row(NOW)])
    page = asyncio.run(store.search_events(EventQuery(since=NOW - 1, until=NOW)))
    assert [e.id for e in page.events] == [b]


def test_a_full_last_page_says_so_only_when_rows_remain(store):
    record(store, [row(NOW - i) for i in range(4)])
    page = asyncio.run(store.search_events(EventQuery(limit=4)))
    assert len(page.events) == 4 and page.next is None
    page = asyncio.run(store.search_events(EventQuery(limit=3)))
    assert page.next == (page.events[-1].ts, page.events[-1].id)


# --- pruning -----------------------------------------------------------------------
AGES = (0.5, 6.9, 7.1, 29.9, 30.1, 59.9, 60.1, 400)     # days


def policy_rows() -> list[EventRow]:
    # Every domain at every age, twice (one same-ts twin), shuffled so ids do not follow ts.
    rows = [row(NOW - age * DAY, domain=d, local=local)
            for d in DOMAINS for age in AGES for local in ("x", "y")]
    random.Random(7).shuffle(rows)
    return rows


def cutoffs(default_days, domain_days: dict) -> tuple:
    def at(days):
        return None if days is None else NOW - days * DAY
    return at(default_days), {d: at(days) for d, days in domain_days.items()}


@pytest.mark.parametrize("default_days, domain_days", [
    (30, {"a.test": 7, "b.test": None, "c.test": 60}),
    (None, {"a.test": 7, "c.test": 60}),
    (30, {}),
    (7, {"b.test": None}),
])
@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_prune_deletes_exactly_what_is_past_each_domains_cutoff(store, default_days,
                                                                domain_days, batch):
    rows = policy_rows()
    ids = record(store, rows)
    before, domains = cutoffs(default_days, domain_days)

    def expired(r: EventRow) -> bool:
        cut = domains[r.domain] if r.domain in domains else before
        return cut is not None and r.ts < cut
    gone = {i for i, r in zip(ids, rows, strict=True) if expired(r)}
    assert 0 < len(gone) < len(rows)
    assert asyncio.run(store.prune_events(before, domains, batch)) == len(gone)
    left = set(event_ids(store))
    assert left == set(ids) - gone
    assert asyncio.run(store.prune_events(before, domains, batch)) == 0     # nothing more


def test_a_row_exactly_at_the_cutoff_stays(store):
    kept, gone = record(store, [row(NOW - 30 * DAY, domain="x.test"),
                                row(NOW - 30 * DAY - 0.001, domain="x.test")])
    assert asyncio.run(store.prune_events(NOW - 30 * DAY, {}, 10)) == 1
    assert event_ids(store) == [kept]


def test_prune_deletes_at_most_a_batch_per_transaction(store):
    if not isinstance(store, SQLiteStore):
        pytest.skip("watches the SQLite writer's transactions")
    # Watch the writer's own connection: every DELETE between one BEGIN and its COMMIT.
    record(store, [row(NOW - 100 * DAY - i, domain=d) for i in range(25)
                   for d in ("a.test", "other.test")])
    statements: list[str] = []
    store._writer.conn.set_trace_callback(statements.append)
    try:
        assert asyncio.run(store.prune_events(NOW - DAY, {"a.test": NOW - 2 * DAY}, 4)) == 50
    finally:
        store._writer.conn.set_trace_callback(None)
    # Rows, not statements: the trace shows a DELETE again for the foreign-key actions
    # it sets off (the webhook outbox's ON DELETE CASCADE).
    per_transaction: list[int] = []
    rows: set[str] = set()
    for sql in statements:
        if sql.startswith("DELETE FROM events"):
            rows.add(sql)
        elif sql == "COMMIT":
            per_transaction.append(len(rows))
            rows = set()
    assert sum(per_transaction) == 50 and max(per_transaction) == 4


def test_data_comes_back_as_it_was_written(store):
    # Key order, a NUL in a string, a float past 2**53 and a nested list: the stored
    # object as given, on either backend (PostgreSQL keeps the JSON text: type json).
    data = {"zeta": 1, "alpha": "a\x00b", "big": 1e16, "rcpt": "u@a.test", "list": [1, "2"]}
    [i] = record(store, [EventRow.of(NOW, "accepted", None, "M1", data)])
    [e] = asyncio.run(store.search_events(EventQuery(message_id="M1"))).events
    assert e.id == i and e.data == data and list(e.data) == list(data)
    assert isinstance(e.data["big"], float)
    [latest] = asyncio.run(store.events(1))
    assert list(latest) == ["ts", "type", "session", "message_id", *data]


def test_top_values_most_frequent_first_then_by_value(store):
    reasons = ["spf"] * 3 + ["relay"] * 3 + ["Zed", "zed", "é"] + ["unknown"] * 4
    record(store, [row(NOW - i, "rejected", "a.test") for i in range(2)]       # no reason
           + [EventRow.of(NOW - 5, "rejected", None, None, {"reason": r, "domain": "a.test"})
              for r in reasons]
           + [EventRow.of(NOW - 5, "rejected", None, None, {"reason": "spf", "domain": "b.test"}),
              EventRow.of(NOW - 5, "delivered", None, None, {"reason": "spf"}),
              EventRow.of(NOW - 100, "rejected", None, None, {"reason": "old"})])
    top = asyncio.run(store.top_values("rejected", "reason", NOW - 50, NOW + 1))
    assert top == [("spf", 4), ("unknown", 4), ("relay", 3), ("Zed", 1), ("zed", 1),
                   ("é", 1)]
    assert asyncio.run(store.top_values("rejected", "reason", NOW - 50, NOW + 1, "a.test",
                                        limit=2)) == [("unknown", 4), ("relay", 3)]
