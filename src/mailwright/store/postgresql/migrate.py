"""Schema migrations: migrations/NNNN_name.sql, applied in order, each once.

`schema_migrations` records what a database has. Every migration runs in its own
transaction under an advisory lock, so two nodes started together (or two
`mailwright migrate` runs) apply each one exactly once, and a failing one leaves the
database at the version before it. A node never migrates on its own: it refuses to
start on a database behind or ahead of its code (`check`), since with several nodes the
admin decides when the schema changes (`mailwright migrate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from ..base import StoreUnavailable

# pg_advisory_xact_lock key: "mwschema" as an integer, shared by every node.
LOCK_KEY = 0x6D77736368656D61

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class SchemaError(StoreUnavailable):
    """The database's schema does not match this release; the text says what to do."""


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise AssertionError(f"migrations must be numbered 1..n without gaps: {versions}")
    return found


def _applied(conn: psycopg.Connection) -> set[int]:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                 "version integer PRIMARY KEY, name text NOT NULL, "
                 "applied timestamptz NOT NULL DEFAULT now())")
    return {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}


def migrate(dsn: str) -> list[Migration]:
    """Apply what the database lacks; the migrations applied now."""
    done = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for migration in migrations():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                if migration.version in _applied(conn):
                    continue
                conn.execute(migration.sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))
                done.append(migration)
    return done


def check(dsn: str) -> None:
    """Raise SchemaError unless the database has exactly this release's migrations."""
    known = {m.version for m in migrations()}
    with psycopg.connect(dsn, autocommit=True) as conn:
        have = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        applied = _applied(conn) if have and have[0] else set()
    if applied - known:
        raise SchemaError(f"the database has schema versions this release does not know "
                          f"({', '.join(map(str, sorted(applied - known)))}): it was "
                          "migrated by a newer Mailwright; upgrade this node")
    if known - applied:
        raise SchemaError(f"the database lacks {len(known - applied)} schema migration(s) "
                          "of this release: run `mailwright migrate` (once, on any node)")
