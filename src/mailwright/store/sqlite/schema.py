"""The schema: schema.sql, columns added since a table was first released, and the
one-time adoptions of older databases (subscriptions, the text index)."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

SCHEMA_VERSION = "1"
# Columns added after a table was first released: added in place on open.
ADDED_COLUMNS = (
    ("domains", "pop3_expire_days", "INTEGER"),
    ("messages", "pop3_retrieved", "REAL"),
    ("queue_recipients", "delay_warned", "INTEGER NOT NULL DEFAULT 0"),
    ("queue_recipients", "lease", "REAL NOT NULL DEFAULT 0"),
    ("mailboxes", "recent_uid", "INTEGER NOT NULL DEFAULT 1"),
    ("messages", "meta_id", "INTEGER"),
    ("message_meta", "sent_day", "INTEGER"),
    ("message_meta", "display_from", "TEXT NOT NULL DEFAULT ''"),
    ("message_meta", "display_to", "TEXT NOT NULL DEFAULT ''"),
    ("message_meta", "version", "INTEGER NOT NULL DEFAULT 0"),   # 0: parse again
    ("events", "address", "TEXT"),
    ("events", "domain", "TEXT"),
    ("events", "tag", "TEXT"),
    ("events", "role", "TEXT"),
    ("queue", "tag", "TEXT"),
    ("api_keys", "campaigns", "INTEGER NOT NULL DEFAULT 0"),   # issue 17
    ("message_text_pending", "chars", "INTEGER NOT NULL DEFAULT 0"),
)


def _schema_sql() -> str:
    return resources.files(__package__).joinpath("schema.sql").read_text()


def init_schema(conn: sqlite3.Connection) -> None:
    """Create what is missing: tables, columns added since, the backfill's index."""
    conn.executescript(_schema_sql())
    had_role = any(row[1] == "role" for row in conn.execute("PRAGMA table_info(events)"))
    for table, column, decl in ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    # Messages still to parse (stored before IMAP metadata): the start-up backfill
    # finds them here instead of scanning every message. After the migration above,
    # since older databases get meta_id only then.
    conn.execute("CREATE INDEX IF NOT EXISTS messages_unparsed ON messages (blob) "
                 "WHERE meta_id IS NULL")
    # Event search and per-domain retention (store/sqlite/events.py), likewise after
    # the columns they cover exist. Each key with ts: a search's rows come newest first
    # straight off the index (its rowid, the id, breaks ties), and a domain's old rows
    # are one range for the pruner.
    conn.execute("CREATE INDEX IF NOT EXISTS events_address ON events (address, ts)")
    conn.execute("CREATE INDEX IF NOT EXISTS events_domain ON events (domain, ts)")
    conn.execute("CREATE INDEX IF NOT EXISTS events_message ON events (message_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS events_tag ON events (tag, ts) "
                 "WHERE tag IS NOT NULL")
    if not had_role:
        # Once, as the column arrives: the rows written before it get their role, so
        # traffic statistics count them too.
        conn.execute("UPDATE events SET role=json_extract(data, '$.role') "
                     "WHERE json_extract(data, '$.role') IS NOT NULL")
    # Traffic statistics (store/sqlite/events.py count_events): each series is a range
    # of (type, ts) and the index holds every column its count tests, so it is counted
    # from the index alone (1M events over 30 days: ~50 ms, bench/event_stats.py).
    conn.execute("CREATE INDEX IF NOT EXISTS events_traffic ON events (type, ts, domain, role)")
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                 (SCHEMA_VERSION,))


def adopt_legacy_subscriptions(conn: sqlite3.Connection) -> None:
    """Databases from before the subscriptions table kept a `subscribed` flag on
    each mailbox: copy the subscribed names once (marked in meta, since the old
    column stays and fills with its default for mailboxes created later)."""
    if conn.execute("SELECT 1 FROM meta WHERE key='subscriptions_adopted'").fetchone():
        return
    columns = {row[1] for row in conn.execute("PRAGMA table_info(mailboxes)")}
    conn.execute("BEGIN IMMEDIATE")          # one step, even with several processes
    try:
        if "subscribed" in columns and not conn.execute(
                "SELECT 1 FROM meta WHERE key='subscriptions_adopted'").fetchone():
            conn.execute("INSERT OR IGNORE INTO subscriptions (account_id, name) "
                         "SELECT account_id, name FROM mailboxes WHERE subscribed")
        conn.execute("INSERT OR IGNORE INTO meta (key, value) "
                     "VALUES ('subscriptions_adopted', '1')")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _fts5_arguments(sql: str) -> str:
    """The arguments of a CREATE VIRTUAL TABLE ... USING fts5(...), spaces normalized."""
    found = re.search(r"USING\s+fts5\s*\((.*)\)", sql, re.S)
    return " ".join(found[1].split()) if found else ""


# The text index as declared before the texts were a table of their own: its rows
# hold the folded texts (what message_texts holds now), so they are kept.
_TEXTS_IN_INDEX = "hdr, body, tokenize = 'trigram', detail = none, columnsize = 0"


def adopt_text_index(conn: sqlite3.Connection) -> None:
    """A database whose text index was declared otherwise than schema.sql declares it
    now gets the table anew. From before the texts were a table of their own, the
    index's texts are kept in message_texts and indexed again by the writer in the
    background (SEARCH reads them meanwhile); from before substring SEARCH (a word
    index, FTS5 unicode61), every parse is marked as older, so that the start-up
    backfill fills the new index (see META_VERSION)."""
    schema = _schema_sql()
    create = re.search(r"CREATE VIRTUAL TABLE IF NOT EXISTS message_text\b.*?;", schema, re.S)
    assert create is not None, "schema.sql declares message_text"

    def declared() -> str | None:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type='table' "
                           "AND name='message_text'").fetchone()
        return _fts5_arguments(row[0]) if row else None
    if declared() == _fts5_arguments(create[0]):
        return
    conn.execute("BEGIN IMMEDIATE")          # one step, even with several processes
    try:
        old = declared()
        if old != _fts5_arguments(create[0]):
            conn.execute("DELETE FROM message_text_pending")
            conn.execute("DELETE FROM message_texts")
            if old == " ".join(_TEXTS_IN_INDEX.split()):
                conn.execute("INSERT INTO message_texts (meta_id, hdr, body) "
                             "SELECT rowid, hdr, body FROM message_text")
                conn.execute("INSERT INTO message_text_pending (meta_id, queued) "
                             "SELECT meta_id, 0 FROM message_texts")
            else:
                conn.execute("UPDATE message_meta SET version=0")
            conn.execute("DROP TABLE IF EXISTS message_text")
            conn.execute(create[0])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
