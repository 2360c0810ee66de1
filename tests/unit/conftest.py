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


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path_factory):
    """make_store() -> a new empty store of each backend in turn (the interface tests run
    on both, so both behave alike); make_store(same_as=s) opens s's data once more (a
    restart, or a second process or node); sqlite_class and sqlite_options make the SQLite
    store otherwise. Every store made is closed after the test."""
    made = []
    databases: dict = {}                    # a store's directory -> its PostgreSQL DSN

    def make(same_as=None, sqlite_class=SQLiteStore, **sqlite_options):
        directory = same_as.data_dir if same_as is not None else \
            tmp_path_factory.mktemp("store")
        if request.param == "sqlite":
            s = sqlite_class(directory, render_views=fetch_views, **sqlite_options)
        else:
            from mailwright.store.postgresql import PostgresStore
            if directory not in databases:
                postgres = request.getfixturevalue("postgres")
                databases[directory] = postgres.create_database(
                    template=postgres.migrated_template())
            s = PostgresStore(databases[directory], directory, render_views=fetch_views)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()
    if databases:
        postgres = request.getfixturevalue("postgres")
        for dsn in databases.values():
            postgres.drop_database(dsn)
