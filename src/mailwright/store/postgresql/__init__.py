"""The store for several nodes: PostgreSQL holds everything, message octets included.

One module per concern, as in the SQLite backend (store/sqlite/), each a mixin over
`self.db` (db.py: psycopg 3's async pool on a loop of its own); PostgresStore puts
them together. Every node opens the same database; what must happen once per
cluster (schema migrations, the queue's claims, the pruner, the webhook outbox) is
decided in the database (advisory locks, FOR UPDATE SKIP LOCKED), never by a node
alone. Schema: migrations/*.sql, applied by `mailwright migrate` (migrate.py).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..base import StoreUnavailable
from ..blobs import Spool
from ..mailboxes import RenderViews
from .admins import PostgresAdmins
from .apikeys import PostgresApiKeys
from .campaigns import PostgresCampaigns
from .cluster import PostgresCluster
from .db import Database
from .directory import PostgresDirectory
from .events import PostgresEvents
from .mailbox_messages import PostgresMailboxMessages
from .mailboxes import PostgresMailboxes
from .messages import PostgresMessages
from .meta import PostgresMeta
from .migrate import check
from .pop3 import PostgresPop3
from .queue import PostgresQueue
from .quota import PostgresQuota
from .search import PostgresSearch
from .suppressions import PostgresSuppressions
from .webhooks import PostgresWebhooks


class PostgresBase:
    """What every concern's mixin uses: the pool, where spools go, the renderer."""

    def __init__(self, dsn: str, data_dir: Path, render_views: RenderViews, *,
                 pool_size: int = 10):
        try:
            check(dsn)                           # a schema this code knows, or a clear error
            self.db = Database(dsn, max_size=pool_size)
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot use the PostgreSQL database {where(dsn)}: "
                                   f"{str(e).strip()}") from None
        self.data_dir = data_dir
        self.render_views = render_views
        # A message being received spills to a local file past SPOOL_MEMORY (blobs.py);
        # it reaches the database when it is delivered.
        self.spool_dir = data_dir / "spool"
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def spool(self) -> Spool:
        return Spool(self.spool_dir)

    def close(self) -> None:
        self.db.close()


def where(dsn: str) -> str:
    """The database a DSN names, for messages: never its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "([store] dsn does not parse)"
    host = parts.get("host") or "local socket"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{parts.get('dbname', '')!r} on {host}{port}"


# PostgresBase last: mixins that keep state of their own (events, webhooks) extend
# __init__ and close cooperatively (super()), and the base ends the chain.
class PostgresStore(
        PostgresQueue,
        PostgresCluster,
        PostgresMailboxes,
        PostgresMailboxMessages,
        PostgresSearch,
        PostgresDirectory,
        PostgresMessages,
        PostgresMeta,
        PostgresPop3,
        PostgresQuota,
        PostgresEvents,
        PostgresWebhooks,
        PostgresApiKeys,
        PostgresAdmins,
        PostgresSuppressions,
        PostgresCampaigns,
        PostgresBase):
    pass
