"""Events and webhooks with several nodes on one PostgreSQL database: the rows every
node's record_event queued all land, with distinct ids; a webhook endpoint's
deliveries go to one node at a time (its lane), so none is handed out twice, and a
node that stops renewing its claim loses the lane to another."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mailwright.events.log import EventRow
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.postgresql import PostgresStore
from mailwright.store.webhooks import DELIVERED, PENDING, WebhookOutcome

NOW = 1_800_000_000.0


@pytest.fixture
def nodes(pg_dsn, tmp_path):
    """Two stores (two nodes) on one database; closed at the end if a test did not."""
    made = [PostgresStore(pg_dsn, tmp_path / f"node{i}", render_views=fetch_views)
            for i in range(2)]
    yield made
    for s in made:
        if not s.db.loop.is_closed():
            s.close()


def rows_of(store, sql: str, *args) -> list[tuple]:
    return asyncio.run(store.db.fetchall(sql, args))


def event(i: int, node: int) -> EventRow:
    return EventRow.of(NOW + i, "accepted", f"S{node}", f"M{node}-{i}",
                       {"rcpt": f"u{i}@a.test", "node": node})


def test_every_node_s_rows_land_with_distinct_ids(nodes, pg_dsn, tmp_path):
    a, b = nodes
    asyncio.run(a.add_webhook("http://127.0.0.1:9/hook", None, ("*",), "s", NOW))
    per_thread = 400

    def emit(store, node: int, part: int) -> None:
        for i in range(per_thread):
            store.record_event(event(part * per_thread + i, node))
    threads = [threading.Thread(target=emit, args=(s, n, part))
               for n, s in enumerate(nodes) for part in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in nodes:
        s.close()                          # what is queued goes in before the pool closes
    check = PostgresStore(pg_dsn, tmp_path / "check", render_views=fetch_views)
    try:
        [(n, ids, sessions)] = rows_of(check, "SELECT count(*), count(DISTINCT id), "
                                              "count(DISTINCT message_id) FROM events")
        assert n == ids == sessions == 2 * 2 * per_thread
        # Each row went through the fan-out trigger in the statement that stored it.
        [(deliveries,)] = rows_of(check, "SELECT count(*) FROM webhook_deliveries")
        assert deliveries == n
    finally:
        check.close()


def test_a_refused_row_is_dropped_alone(nodes):
    a, _ = nodes
    good = [event(i, 0) for i in range(5)]
    nul = EventRow.of(NOW, "accepted", "S\x00", "bad-nul", {"rcpt": "x@a.test"})
    nan = EventRow.of(NOW, "accepted", None, "bad-nan", {"rcpt": "x@a.test", "v": float("nan")})
    for r in (good[0], nul, *good[1:3], nan, *good[3:]):
        a.record_event(r)
    a.flush_events()
    stored = [m for (m,) in rows_of(a, "SELECT message_id FROM events ORDER BY id")]
    assert stored == [r.message_id for r in good]


def test_reads_see_the_rows_their_node_queued(nodes):
    a, _ = nodes
    for i in range(50):
        a.record_event(event(i, 0))
    # No flush: a read waits for what this store queued before it.
    assert len(asyncio.run(a.events(100))) == 50


async def _drain(store, handed: list[int]) -> None:
    """A dispatcher's part: take each due endpoint's deliveries a batch at a time and
    report them delivered, until the outbox is empty (bounded)."""
    for _ in range(1000):
        due, _ = await store.webhooks_due(time.time())
        if not due and (await store.webhook_backlog())[PENDING] == 0:
            return
        for endpoint in due:
            for item in await store.webhook_pending(endpoint.id, 7):
                handed.append(item.delivery.id)
                await store.webhook_outcome(WebhookOutcome(
                    item.delivery.id, endpoint.id, DELIVERED, time.time(), status=204))
        await asyncio.sleep(0)
    raise AssertionError("the outbox never emptied")


def test_two_nodes_never_hand_out_one_delivery_twice(nodes):
    a, b = nodes
    endpoints = [asyncio.run(a.add_webhook(f"http://127.0.0.1:9/{i}", None, ("*",), "s", NOW))
                 for i in range(6)]
    for i in range(60):
        (a if i % 2 else b).record_event(event(i, i % 2))
    a.flush_events()
    b.flush_events()
    expected = {d for (d,) in rows_of(a, "SELECT id FROM webhook_deliveries")}
    assert len(expected) == len(endpoints) * 60
    got_a: list[int] = []
    got_b: list[int] = []

    async def both():
        await asyncio.gather(_drain(a, got_a), _drain(b, got_b))
    asyncio.run(both())
    assert len(got_a) + len(got_b) == len(set(got_a) | set(got_b))    # none twice
    assert set(got_a) | set(got_b) == expected
    assert rows_of(a, "SELECT count(*) FROM webhook_deliveries WHERE state<>%s",
                   DELIVERED) == [(0,)]


def test_a_lane_is_one_node_s_until_it_ends_or_its_claim_runs_out(nodes):
    a, b = nodes
    endpoint = asyncio.run(a.add_webhook("http://127.0.0.1:9/x", None, ("*",), "s", NOW))
    for i in range(3):
        a.record_event(event(i, 0))
    a.flush_events()
    first = asyncio.run(a.webhook_pending(endpoint.id, 2))
    assert [p.event.message_id for p in first] == ["M0-0", "M0-1"]
    # a holds the lane: b gets nothing, and is not told the endpoint is due.
    assert asyncio.run(b.webhook_pending(endpoint.id, 10)) == []
    assert asyncio.run(b.webhooks_due(time.time())) == ([], None)
    assert [e.id for e in asyncio.run(a.webhooks_due(time.time()))[0]] == [endpoint.id]
    # A failure ends a's lane: the delivery is tried again first, by whichever node.
    asyncio.run(a.webhook_outcome(WebhookOutcome(
        first[0].delivery.id, endpoint.id, PENDING, time.time(), status=500, error="HTTP 500",
        failures=1, retry_at=0.0)))
    again = asyncio.run(b.webhook_pending(endpoint.id, 10))
    assert [p.delivery.id for p in again] == [first[0].delivery.id, first[1].delivery.id,
                                              again[2].delivery.id]
    assert asyncio.run(a.webhook_pending(endpoint.id, 10)) == []
    # b stops renewing its claim (a node that died): once it runs out, a takes over.
    asyncio.run(b.db.statement("UPDATE webhook_endpoints SET lane_until=0"))
    assert len(asyncio.run(a.webhook_pending(endpoint.id, 10))) == 3
    # Closing a store frees the lanes it held.
    a.close()
    assert len(asyncio.run(b.webhook_pending(endpoint.id, 10))) == 3


def test_two_nodes_pruning_at_once_delete_each_row_once(nodes):
    a, b = nodes
    for i in range(600):
        a.record_event(EventRow.of(NOW - 1000 + i, "accepted", None, f"M{i}",
                                   {"rcpt": f"u@{('a', 'b', 'c')[i % 3]}.test"}))
    a.flush_events()
    # a.test's 200 rows all go (its own cutoff), b.test's never (None), c.test's below
    # the default cutoff NOW - 700 (100 of its 200).
    cut = {"a.test": NOW + 1, "b.test": None}

    async def both():
        return await asyncio.gather(a.prune_events(NOW - 700, cut, 7),
                                    b.prune_events(NOW - 700, cut, 7))
    counts = asyncio.run(both())
    assert sum(counts) == 200 + 100
    left = rows_of(a, "SELECT count(*) FROM events")
    assert left == [(300,)]
    assert asyncio.run(a.prune_events(NOW - 700, cut, 7)) == 0
