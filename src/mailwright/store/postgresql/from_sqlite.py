"""`mailwright migrate --from sqlite:PATH`: a single-node install into PostgreSQL.

Every table both schemas have is copied row for row, ids included, so what clients
hold stays true: mailboxes keep their UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ and
every message its UID, MODSEQ and flags (IMAP clients do not resynchronise), the
queue its messages and retry times, the event log its history. Message octets come
from blob_inline or the files under PATH/blobs into `blobs`; the parse (message_meta)
and the text index (message_text, an FTS5 table there) as they are, since both
backends store the same values (postgresql/meta.py). A parse without its text row is
left out: the store's start-up backfill parses those messages again.

One transaction: the target is either fully copied or untouched. Rows go in by
COPY, read from SQLite BATCH rows at a time (memory stays bounded). The target must
be empty (a migrated schema and no data): merging two installs is not this. Tables
are copied parents first (their foreign keys, read from the catalog), the webhook
fan-out trigger off (deliveries are copied as they were, not made again from the
copied events), identity sequences moved past the copied ids. Claims of the old
server's queue are void (lease 0). Stop the old server first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ..blobs import BlobStore
from .meta import pg_text
from .migrate import migrate

BATCH = 1000

# Present in both, not data: the SQLite schema's own bookkeeping, the target's.
_NOT_COPIED = {"meta", "schema_migrations", "auth_failures"}
# Filled from elsewhere in SQLite (blob_inline and files; the FTS5 table).
_SPECIAL = {"blobs", "message_text"}
# What a copied row must not carry over: the old server's claims.
_RESET = {"queue_recipients": {"lease": 0.0}}


class MigrateError(Exception):
    """The copy cannot be made; the text says why (nothing was written)."""


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int


def parse_source(source: str) -> Path:
    """`sqlite:PATH`, PATH the old data_dir (or its mail.db): the data_dir."""
    kind, _, path = source.partition(":")
    if kind != "sqlite" or not path:
        raise MigrateError(f"--from {source!r}: expected sqlite:PATH, PATH the data_dir of "
                           "the single-node install")
    where = Path(path).expanduser()
    if where.is_file():
        where = where.parent
    if not (where / "mail.db").is_file():
        raise MigrateError(f"--from {source!r}: no SQLite store there ({where / 'mail.db'} "
                           "does not exist)")
    return where


def copy_from_sqlite(dsn: str, data_dir: Path) -> list[Copied]:
    """Migrate the schema, then copy the store in data_dir into the (empty) database."""
    migrate(dsn)
    src = sqlite3.connect(f"file:{data_dir / 'mail.db'}?mode=ro", uri=True)
    try:
        with psycopg.connect(dsn) as dst:            # one transaction, committed at the end
            return _copy(src, dst, BlobStore(data_dir / "blobs"))
    finally:
        src.close()


def _copy(src: sqlite3.Connection, dst: psycopg.Connection,
          blobs: BlobStore) -> list[Copied]:
    types = _pg_columns(dst)
    order = [t for t in _parents_first(dst, types) if t not in _NOT_COPIED]
    have = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    _refuse_unless_empty(dst, order)
    dst.execute("ALTER TABLE events DISABLE TRIGGER USER")
    # The parses that have their text row (and so are copied).
    texts = {r[0] for r in src.execute("SELECT rowid FROM message_text")} & \
        {r[0] for r in src.execute("SELECT id FROM message_meta")}
    done = []
    for table in order:
        if table == "blobs":
            count = _copy_blobs(src, dst, blobs)
        elif table == "message_text":
            count = _copy_rows(dst, table, ["meta_id", "hdr", "body"], types[table], (
                [r for r in batch if r[0] in texts]
                for batch in _batches(src, "SELECT rowid, hdr, body FROM message_text")))
        elif table in have:
            count = _copy_table(src, dst, table, types[table], texts)
        else:
            continue
        done.append(Copied(table, count))
    dst.execute("ALTER TABLE events ENABLE TRIGGER USER")
    _advance_identities(dst)
    return done


def _pg_columns(dst: psycopg.Connection) -> dict[str, dict[str, str]]:
    """table: {column: data_type} of the target's tables, in column order."""
    out: dict[str, dict[str, str]] = {}
    for table, column, kind in dst.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        out.setdefault(table, {})[column] = kind
    return out


def _parents_first(dst: psycopg.Connection, types: dict) -> list[str]:
    """The tables, each after those its foreign keys point at."""
    parents: dict[str, set[str]] = {t: set() for t in types}
    for child, parent in dst.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"):
        if child != parent:
            parents[child].add(parent)
    order: list[str] = []
    while parents:
        ready = sorted(t for t, p in parents.items() if not p - set(order))
        order += ready
        for t in ready:
            del parents[t]
    return order


def _refuse_unless_empty(dst: psycopg.Connection, tables: list[str]) -> None:
    filled = [t for t in tables
              if dst.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]
    if filled:
        raise MigrateError(
            f"the database already holds data (in {', '.join(filled)}): --from copies a "
            "single-node install into an empty database only; make a new database, "
            "point [store] dsn at it and run this again")


def _batches(src: sqlite3.Connection, sql: str, args=()) -> Iterator[list[tuple]]:
    cur = src.execute(sql, args)
    while rows := cur.fetchmany(BATCH):
        yield rows


def _copy_table(src: sqlite3.Connection, dst: psycopg.Connection, table: str,
                types: dict[str, str], texts: set[int]) -> int:
    present = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    reset = _RESET.get(table, {})
    columns = [c for c in types if c in present]
    select = ", ".join(f"? AS {c}" if c in reset else c for c in columns)
    rows = _batches(src, f"SELECT {select} FROM {table}",
                    [reset[c] for c in columns if c in reset])
    if table == "message_meta":
        # A parse without its text row would search as empty: leave it to the backfill.
        rows = ([r for r in batch if r[columns.index("id")] in texts] for batch in rows)
    elif table == "messages" and "meta_id" in columns:
        at = columns.index("meta_id")
        rows = ([(*r[:at], r[at] if r[at] in texts else None, *r[at + 1:]) for r in batch]
                for batch in rows)
    return _copy_rows(dst, table, columns, types, rows)


def _copy_rows(dst: psycopg.Connection, table: str, columns: list[str],
               types: dict[str, str], batches) -> int:
    convert = [_converter(types[c]) for c in columns]
    count = 0
    with dst.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for batch in batches:
            for row in batch:
                copy.write_row([f(v) for f, v in zip(convert, row, strict=True)])
            count += len(batch)
    return count


def _converter(pg_type: str):
    """SQLite's value as the PostgreSQL column takes it."""
    if pg_type == "boolean":
        return lambda v: None if v is None else bool(v)
    if pg_type == "bytea":
        return lambda v: v.encode() if isinstance(v, str) else v
    if pg_type == "text":
        return pg_text
    return lambda v: v


def _copy_blobs(src: sqlite3.Connection, dst: psycopg.Connection, files: BlobStore) -> int:
    """Every referenced blob's octets: inline in the database, or a file."""
    count = 0
    with dst.cursor().copy("COPY blobs (digest, data) FROM STDIN") as copy:
        for batch in _batches(src, "SELECT blob FROM messages UNION SELECT blob FROM queue "
                                   "UNION SELECT blob FROM queue_finished"):
            for (digest,) in batch:
                row = src.execute("SELECT data FROM blob_inline WHERE digest=?",
                                  (digest,)).fetchone()
                if row is not None:
                    data = bytes(row[0])
                else:
                    try:
                        data = files.path(digest).read_bytes()
                    except FileNotFoundError:
                        raise MigrateError(f"message octets {digest} are referenced but "
                                           f"missing ({files.path(digest)})") from None
                copy.write_row([digest, data])
            count += len(batch)
    return count


def _advance_identities(dst: psycopg.Connection) -> None:
    """New rows get ids after the copied ones."""
    for table, column in dst.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
        dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"coalesce(max({column}), 0) + 1, false) FROM {table}")
