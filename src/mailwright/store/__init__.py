"""The mail store: interfaces per concern (base.py and the modules it names) and the
backends that implement them; `open_store` opens the one the configuration names
(`[store] backend`, config.py STORE_BACKENDS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from .base import MailStore
    from .mailboxes import RenderViews


def open_store(config: Config, render_views: RenderViews, indexer: bool = False) -> MailStore:
    """The configured backend over config.data_dir. `render_views` renders a message's
    FETCH views at delivery (the composition root passes imap/fetch.py's). indexer: this
    process builds SQLite's full-text index in the background (one process of the
    server does: store/sqlite/textindex.py); PostgreSQL indexes as it stores."""
    backend = config.store.backend
    if backend == "sqlite":
        # Imported here: a backend's modules (and its driver) load only when chosen.
        from .sqlite import SQLiteStore
        return SQLiteStore(config.data_dir, render_views, index_in_background=indexer,
                           cache_mib=config.store.cache_mib)
    if backend == "postgresql":
        from .postgresql import PostgresStore
        return PostgresStore(config.store.conninfo(), config.data_dir, render_views,
                             pool_size=config.store.pool_size)
    raise ValueError(f"no store backend {backend!r} (config.py checks the name)")
