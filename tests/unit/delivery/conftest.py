"""A store with one account, for the delivery policy tests that need real lookups."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.sqlite import SQLiteStore


@pytest.fixture
def ann_store(tmp_path):
    """(store, account id) of ann@a.test, alone in domain a.test."""
    s = SQLiteStore(tmp_path, render_views=fetch_views)
    yield ann(s)
    s.close()


@pytest.fixture
def ann_stores(make_store):
    """ann_store on each backend in turn (for the tests of the directory, delivery,
    POP3 and quota parts of the store)."""
    return ann(make_store())


def ann(s):
    asyncio.run(s.add_domain("a.test"))
    asyncio.run(s.add_account(parse_mailbox("ann@a.test"), "password-1"))
    return s, asyncio.run(s.account_id("ann@a.test"))
