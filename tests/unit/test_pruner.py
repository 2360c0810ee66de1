"""The background pruner (admin/pruner.py) on a real store: it prunes at once and then
every prune_interval, records events-pruned only when something went, and a failing
run is logged while the task goes on."""

from __future__ import annotations

import asyncio
import logging
import time

from mailwright.admin import Admin
from mailwright.admin.pruner import prune_periodically
from mailwright.app import open_store
from mailwright.config import parse
from mailwright.events.log import EventLog, EventRow

from .stored import MINIMAL_CONFIG

DAY = 86400.0


def make_admin(tmp_path, extra: str, clock):
    """An admin over a SQLite store (the tests below reach into its writer)."""
    cfg = parse(MINIMAL_CONFIG.format(data_dir=tmp_path) + extra)
    store = open_store(cfg)
    return Admin(store, cfg, clock=clock), store


def count(store, where: str = "1") -> int:
    return store.conn.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()[0]


async def until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def test_pruner_deletes_old_rows_and_reports_only_what_went(tmp_path):
    admin, store = make_admin(tmp_path, "[events]\nretention_days = 1\nprune_interval = 0.02\n",
                              clock=time.time)
    old = time.time() - 2 * DAY
    for i in range(5):
        store.record_event(EventRow.of(old, "smtp-connect", f"S{i}", None,
                                       {"ip": "127.0.0.1", "role": "mx", "tls": ""}))

    async def run():
        task = asyncio.create_task(prune_periodically(admin.events, EventLog(store)))
        try:
            await until(lambda: count(store, "type='events-pruned'") == 1)
            # Several more runs find nothing: no more events-pruned rows.
            await asyncio.sleep(0.2)
            await store._write(lambda c: None)
        finally:
            task.cancel()
    asyncio.run(run())
    assert count(store, "type='smtp-connect'") == 0
    [pruned] = [e for e in asyncio.run(store.events(10)) if e["type"] == "events-pruned"]
    assert (pruned["events"], pruned["messages"]) == (5, 0)
    assert count(store) == 1
    store.close()


def test_a_failing_run_is_logged_and_the_next_one_runs(tmp_path, caplog):
    admin, store = make_admin(tmp_path, "[events]\nprune_interval = 0.02\n", clock=time.time)
    # A real failure: the table of finished messages is gone for a while.
    store._writer.submit(lambda c: c.execute("ALTER TABLE queue_finished RENAME TO away")
                         ).result()

    async def run():
        task = asyncio.create_task(prune_periodically(admin.events, EventLog(store)))
        try:
            await until(lambda: "pruning events and finished messages failed" in caplog.text)
            assert not task.done()
            await store._write(lambda c: c.execute("ALTER TABLE away RENAME TO queue_finished"))
            caplog.clear()
            await asyncio.sleep(0.2)                       # several runs, none failing
            assert "failed" not in caplog.text and not task.done()
        finally:
            task.cancel()
    with caplog.at_level(logging.ERROR, logger="mailwright"):
        asyncio.run(run())
    store.close()
