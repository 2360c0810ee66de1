"""What a store of either backend holds, for tests that look past its interface: event
rows (record_event queues a row and returns; written(store) waits until what was
queued is in the database) and the raw rows of a table."""

from __future__ import annotations

import asyncio

from mailwright.events.log import EventRow
from mailwright.store.events import EventQuery


def written(store) -> None:
    """Every row recorded so far is stored: SQLite writes them with the writer's next
    batch (an empty job makes one), PostgreSQL with its event writer's. It blocks, and
    may be called from a coroutine too (the store's threads do the work)."""
    if hasattr(store, "flush_events"):
        store.flush_events()
    else:
        store._writer.submit(lambda c: None).result()


def record(store, rows: list[EventRow]) -> list[int]:
    """Write rows as the event log does; their ids, in the order given (ids grow in the
    order rows are recorded on both backends)."""
    before = set(event_ids(store))
    for row in rows:
        store.record_event(row)
    written(store)
    new = sorted(set(event_ids(store)) - before)
    assert len(new) == len(rows)
    return new


def event_ids(store) -> list[int]:
    """The ids of every stored row, newest first."""
    page = asyncio.run(store.search_events(EventQuery(limit=1_000_000)))
    return [e.id for e in page.events]


def table_rows(store, sql: str) -> list[tuple]:
    """The rows of a query (written with ? marks) on the store's own database."""
    if hasattr(store, "db"):
        return [tuple(r) for r in asyncio.run(store.db.fetchall(sql.replace("?", "%s")))]
    return store.conn.execute(sql).fetchall()


# The least a configuration needs: a hostname, a data_dir and one listener.
MINIMAL_CONFIG = """\
hostname = "mx.example.test"
data_dir = "{data_dir}"
[[listeners]]
role = "mx"
port = 2525
"""


def config_text(store, extra: str = "") -> str:
    """A minimal configuration over `store`'s data, of its backend, then `extra`."""
    return MINIMAL_CONFIG.format(data_dir=store.data_dir) + store_section(store) + extra


def store_section(store) -> str:
    """The [store] table of a configuration that opens `store`'s data again ("" for
    SQLite, the default backend over data_dir)."""
    if hasattr(store, "db"):
        return f'[store]\nbackend = "postgresql"\ndsn = "{store.db.dsn}"\n'
    return ""
