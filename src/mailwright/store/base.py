"""The mail store: every concern's interface in one, as the servers hold it.

Each concern has its own protocol (store/directory.py, store/mailboxes.py,
store/messages.py, store/queue.py, store/events.py, store/apikeys.py,
store/webhooks.py, store/suppressions.py, store/campaigns.py); SQLiteStore
(store/sqlite/) implements them all for one node, and a PostgreSQL backend for several
nodes implements the same, so nothing above this line changes. `open_store`
(store/__init__.py) picks the backend the configuration names.
"""

from __future__ import annotations

from typing import Protocol

from .admins import AdminStore
from .apikeys import ApiKeyStore
from .campaigns import CampaignStore
from .directory import Directory
from .events import EventStore
from .mailboxes import MailboxStore, Maildrops
from .messages import MessageStore
from .queue import QueueStore
from .suppressions import SuppressionStore
from .webhooks import WebhookStore


class StoreError(Exception):
    """A refused administrative change, phrased for the admin."""


class StoreUnavailable(Exception):
    """The store cannot be opened (its database is unreachable, or its schema is not
    this release's); the text says which and what to do."""


class MailStore(Directory, MailboxStore, Maildrops, MessageStore, QueueStore, EventStore,
                ApiKeyStore, WebhookStore, AdminStore, SuppressionStore, CampaignStore,
                Protocol):
    def close(self) -> None: ...
