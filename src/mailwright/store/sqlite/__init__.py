"""The single-node store: blob files + SQLite (WAL) metadata.

One module per concern (directory, mailboxes, messages, meta, search, quota, queue,
pop3, events, apikeys, webhooks, suppressions, campaigns), each a mixin over the store's
read connection `conn` and its writer thread (db.py); SQLiteStore puts them together.

Reads (recipient lookups, credentials, FETCH data) run on the caller's own
connection: indexed point queries on a page-cached database, a few microseconds
each, cheaper than a hop to another thread. Writes are jobs for the writer thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...address import Address
from ..blobs import BlobStore
from ..mailboxes import RenderViews
from .admins import SQLiteAdmins
from .apikeys import SQLiteApiKeys
from .campaigns import SQLiteCampaigns
from .db import CACHE_MIB, Writer, connect
from .directory import SQLiteDirectory
from .events import SQLiteEvents
from .mailboxes import SQLiteMailboxes
from .messages import SQLiteMessages
from .meta import SQLiteMeta
from .pop3 import SQLitePop3
from .queue import SQLiteQueue
from .quota import SQLiteQuota
from .schema import adopt_legacy_subscriptions, adopt_text_index, init_schema
from .search import SQLiteSearch, register_functions
from .suppressions import SQLiteSuppressions
from .textindex import Indexer
from .webhooks import SQLiteWebhooks


class SQLiteStore(SQLiteDirectory, SQLiteMailboxes, SQLiteMessages, SQLiteMeta, SQLiteSearch,
                  SQLiteQuota, SQLiteQueue, SQLitePop3, SQLiteEvents, SQLiteApiKeys,
                  SQLiteWebhooks, SQLiteAdmins, SQLiteSuppressions, SQLiteCampaigns):
    def __init__(self, data_dir: Path, render_views: RenderViews,
                 index_in_background: bool = True, cache_mib: int = CACHE_MIB):
        """index_in_background=False: new texts stay pending until index_pending is
        called (tests that look at both states). cache_mib: each connection's page
        cache (db.py CACHE_MIB)."""
        self.data_dir = data_dir
        self.render_views = render_views
        data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = data_dir / "mail.db"
        self.blobs = BlobStore(data_dir / "blobs")
        self.blobs.clean_tmp()
        self.conn = connect(self.db_path, cache_mib)
        init_schema(self.conn)
        adopt_legacy_subscriptions(self.conn)
        adopt_text_index(self.conn)
        register_functions(self.conn)
        # mailbox id -> ((UIDNEXT, HIGHESTMODSEQ), counts at that version)
        self._counts_cache: dict[int, tuple] = {}
        self._writer = Writer(self.db_path, self.blobs,
                              Indexer(self.blobs) if index_in_background else None, cache_mib)
        self._writer.start()

    async def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run fn in the writer's transaction; its result once committed."""
        return await self._writer.submit_async(fn)

    def close(self) -> None:
        self._writer.submit(None).result()
        self._writer.join()
        self.conn.close()

    async def _unlink(self, digests: list[str]) -> None:
        if digests:
            await asyncio.to_thread(lambda: [self.blobs.remove(d) for d in digests])

    def mailbox_messages(self, address: Address, mailbox: str = "INBOX") -> list[dict]:
        rows = self.conn.execute(
            "SELECT m.uid, m.blob, m.size, m.flags, m.message_id FROM messages m "
            "JOIN mailboxes b ON m.mailbox_id=b.id JOIN accounts a ON b.account_id=a.id "
            "WHERE a.lookup=? AND b.name=? ORDER BY m.uid", (address.key, mailbox))
        return [dict(uid=u, blob=b, size=s, flags=f, message_id=i) for u, b, s, f, i in rows]
