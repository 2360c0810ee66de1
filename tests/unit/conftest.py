import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.sqlite import SQLiteStore

PASSWORD = "s3cret-password"


def populated_store(directory) -> SQLiteStore:
    """A store with the unit tests' domains, accounts and aliases (fuzz/ uses it too)."""
    s = SQLiteStore(directory, render_views=fetch_views)
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_domain("bücher.test"))
    for user in ("alice@example.test", "bob@example.test", "Dörte@bücher.test"):
        asyncio.run(s.add_account(parse_mailbox(user), PASSWORD))
    asyncio.run(s.add_alias("team@example.test", ["alice@example.test", "bob@example.test"]))
    asyncio.run(s.add_alias("alice.smith@example.test", ["alice@example.test"]))
    asyncio.run(s.add_alias("fwd@example.test", ["someone@remote.test"]))
    return s


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    s = populated_store(tmp_path_factory.mktemp("store"))
    yield s
    s.close()
