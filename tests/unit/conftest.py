import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.sqlite import SQLiteStore

PASSWORD = "s3cret-password"


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    s = SQLiteStore(tmp_path_factory.mktemp("store"), render_views=fetch_views)
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_domain("bücher.test"))
    for user in ("alice@example.test", "bob@example.test", "Dörte@bücher.test"):
        asyncio.run(s.add_account(parse_mailbox(user), PASSWORD))
    asyncio.run(s.add_alias("team@example.test", ["alice@example.test", "bob@example.test"]))
    asyncio.run(s.add_alias("alice.smith@example.test", ["alice@example.test"]))
    asyncio.run(s.add_alias("fwd@example.test", ["someone@remote.test"]))
    yield s
    s.close()
