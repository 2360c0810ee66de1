"""The admin layer on a real store of each backend: each operation's result, and each refusal as
the kind of AdminError an API maps to a status (Invalid, NotFound, Conflict)."""

from __future__ import annotations

import asyncio
import calendar
import stat
from pathlib import Path

import pytest

from mailwright.admin import Admin, AdminError, Conflict, Invalid, NotFound, config_check
from mailwright.admin.domains import Domain
from mailwright.app import open_store
from mailwright.config import parse
from mailwright.store.messages import Delivery
from mailwright.store.queue import RemoteRecipient

PASSWORD = "correct horse"
NOW = calendar.timegm((2026, 11, 5, 12, 0, 0))

CONFIG = """
hostname = "mx.example.test"
data_dir = "{data_dir}"
[[listeners]]
role = "mx"
port = 2525
[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}
timeout = 1.0
"""


def _config(tmp_path: Path, dns_port: int = 53):
    return parse(CONFIG.format(data_dir=tmp_path, dns_port=dns_port))


@pytest.fixture
def admin(tmp_path, make_store):
    """The admin layer over a store of each backend (conftest make_store closes it)."""
    return Admin(make_store(), _config(tmp_path), clock=lambda: NOW)


@pytest.fixture
def example(admin):
    """example.test with alice."""
    asyncio.run(admin.domains.add("example.test"))
    asyncio.run(admin.accounts.add("alice@example.test", PASSWORD))
    return admin


def test_errors_are_one_family():
    assert all(issubclass(e, AdminError) for e in (Invalid, NotFound, Conflict))


# --- domains ----------------------------------------------------------------------


def test_domain_add_canonicalises_and_lists(admin):
    assert asyncio.run(
            admin.domains.add(" Example.TEST ")) == Domain("example.test", "example.test")
    assert asyncio.run(
            admin.domains.add("bücher.test")) == Domain("xn--bcher-kva.test", "bücher.test")
    assert asyncio.run(admin.domains.list()) == [Domain("example.test", "example.test"),
                                    Domain("xn--bcher-kva.test", "bücher.test")]


def test_domain_add_refusals(admin):
    with pytest.raises(Invalid, match="invalid domain"):
        asyncio.run(admin.domains.add("no..dots"))
    asyncio.run(admin.domains.add("example.test"))
    with pytest.raises(Conflict, match="already exists"):
        asyncio.run(admin.domains.add("EXAMPLE.test"))


def test_domain_remove(example):
    with pytest.raises(NotFound, match="no such domain: other.test"):
        asyncio.run(example.domains.remove("other.test"))
    with pytest.raises(Conflict, match="1 account.*--force"):
        asyncio.run(example.domains.remove("example.test"))
    assert asyncio.run(example.domains.remove("example.test", force=True)).name == "example.test"
    assert asyncio.run(example.domains.list()) == []
    assert asyncio.run(example.ctx.store.account_id("alice@example.test")) is None


def test_pop3_expire(example):
    result = asyncio.run(example.domains.set_pop3_expire("Example.test", 30))
    assert (result.domain.name, result.days) == ("example.test", 30)
    assert asyncio.run(example.ctx.store.pop3_expire_days("alice@example.test")) == 30
    assert asyncio.run(example.domains.set_pop3_expire("example.test", None)).days is None
    assert asyncio.run(example.ctx.store.pop3_expire_days("alice@example.test")) is None
    with pytest.raises(Invalid):
        asyncio.run(example.domains.set_pop3_expire("example.test", -1))
    with pytest.raises(NotFound):
        asyncio.run(example.domains.set_pop3_expire("other.test", 3))


# --- accounts ---------------------------------------------------------------------


def test_account_add(admin):
    asyncio.run(admin.domains.add("example.test"))
    made = asyncio.run(admin.accounts.add("Alice@EXAMPLE.test", PASSWORD))
    assert made.address == "Alice@example.test"            # local part kept as given
    [row] = asyncio.run(admin.accounts.list("example.test"))
    assert (row.address, row.messages, row.size) == ("Alice@example.test", 0, 0)
    assert asyncio.run(admin.ctx.store.maildrop("alice@example.test")).messages == []  # INBOX


@pytest.mark.parametrize("address, password, error, text", [
    ("not-an-address", PASSWORD, Invalid, "invalid address"),
    ("bob@example.test", "short", Invalid, "password too short"),
    ("bob@nowhere.test", PASSWORD, NotFound, "no such domain: nowhere.test"),
    ("ALICE@example.test", PASSWORD, Conflict, "already exists"),
    ("sales@example.test", PASSWORD, Conflict, "is an alias"),
])
def test_account_add_refusals(example, address, password, error, text):
    asyncio.run(example.aliases.add("sales@example.test", ["alice@example.test"]))
    with pytest.raises(error, match=text):
        asyncio.run(example.accounts.add(address, password))


def test_password_change(example):
    store = example.ctx.store
    before = asyncio.run(store.credentials("alice@example.test")).password_hash
    assert asyncio.run(
            example.accounts.set_password("alice@example.test", "another-pass")).address \
        == "alice@example.test"
    assert asyncio.run(store.credentials("alice@example.test")).password_hash != before
    with pytest.raises(Invalid, match="password too short"):
        asyncio.run(example.accounts.set_password("alice@example.test", "x"))
    with pytest.raises(NotFound, match="no such account: bob@example.test"):
        asyncio.run(example.accounts.set_password("bob@example.test", "another-pass"))


def test_quota(example):
    q = asyncio.run(example.accounts.set_quota("alice@example.test", 500 << 20))
    assert (q.address, q.limit, q.used, q.messages) == ("alice@example.test", 500 << 20, 0, 0)
    store = example.ctx.store
    assert asyncio.run(
            store.quota(asyncio.run(store.account_id("alice@example.test")))).limit == 500 << 20
    assert asyncio.run(example.accounts.set_quota("alice@example.test", 0)).limit == 0
    with pytest.raises(Invalid):
        asyncio.run(example.accounts.set_quota("alice@example.test", -5))
    with pytest.raises(NotFound):
        asyncio.run(example.accounts.set_quota("bob@example.test", 10))


def test_account_remove(example):
    assert asyncio.run(
            example.accounts.remove("ALICE@example.test")).address == "ALICE@example.test"
    assert asyncio.run(example.accounts.list()) == []
    with pytest.raises(NotFound, match="no such account"):
        asyncio.run(example.accounts.remove("alice@example.test"))
    with pytest.raises(Invalid):
        asyncio.run(example.accounts.list("no..dots"))


# --- aliases ----------------------------------------------------------------------


def test_alias_add_merges_targets(example):
    first = asyncio.run(example.aliases.add("sales@example.test", ["alice@example.test"]))
    assert (first.source, first.targets) == ("sales@example.test", ["alice@example.test"])
    both = asyncio.run(
            example.aliases.add("Sales@example.test", ["x@remote.test", "ALICE@example.test"]))
    assert both.targets == ["alice@example.test", "x@remote.test"]
    catch_all = asyncio.run(example.aliases.add("@Example.test", ["alice@example.test"]))
    assert catch_all.source == "@example.test"
    assert [a.source for a in asyncio.run(example.aliases.list("example.test"))] == [
        "@example.test", "sales@example.test"]


@pytest.mark.parametrize("source, targets, error, text", [
    ("sales@example.test", [], Invalid, "at least one target"),
    ("sales@example.test", ["not an address"], Invalid, "invalid address"),
    ("sales@", ["alice@example.test"], Invalid, "invalid address"),
    ("@no..dots", ["alice@example.test"], Invalid, "invalid domain"),
    ("sales@other.test", ["alice@example.test"], NotFound, "no such domain: other.test"),
    ("alice@example.test", ["x@remote.test"], Conflict, "is an account"),
])
def test_alias_add_refusals(example, source, targets, error, text):
    with pytest.raises(error, match=text):
        asyncio.run(example.aliases.add(source, targets))


def test_alias_remove(example):
    asyncio.run(example.aliases.add("sales@example.test", ["alice@example.test"]))
    gone = asyncio.run(example.aliases.remove("SALES@example.test"))
    assert gone.targets == ["alice@example.test"]
    assert asyncio.run(example.aliases.list()) == []
    with pytest.raises(NotFound, match="no such alias"):
        asyncio.run(example.aliases.remove("sales@example.test"))


# --- DKIM -------------------------------------------------------------------------


def test_dkim_generate_first_set_signs(example, tmp_path):
    made = asyncio.run(example.dkim.generate("example.test"))
    assert made.name == "mw202611"                   # from the clock: rotations sort
    assert made.active and made.directory == tmp_path / "dkim" / "example.test"
    assert [(k.selector, k.algorithm) for k in made.keys] == [
        ("mw202611-rsa", "rsa-sha256"), ("mw202611-ed25519", "ed25519-sha256")]
    for k in made.keys:
        assert stat.S_IMODE(Path(k.path).stat().st_mode) == 0o600
        assert k.txt.startswith("v=DKIM1; k=")
    assert {k.selector for k in asyncio.run(example.dkim.list("example.test"))} == {
        k.selector for k in made.keys}


def test_dkim_rotation(example):
    old = asyncio.run(example.dkim.generate("example.test", "k1"))
    new = asyncio.run(example.dkim.generate("example.test", "k2"))
    assert old.active and not new.active                     # published, not signing
    with pytest.raises(Conflict, match="activate another key set first"):
        asyncio.run(example.dkim.retire("example.test", "k1"))
    assert asyncio.run(example.dkim.activate("example.test", "k2")).active
    retired = asyncio.run(example.dkim.retire("example.test", "k1"))
    assert not any(Path(k.path).exists() for k in retired.keys)
    assert {k.name for k in asyncio.run(example.dkim.list())} == {"k2"}


@pytest.mark.parametrize("call, error, text", [
    (lambda a: asyncio.run(a.dkim.generate("other.test")), NotFound, "not a local domain"),
    (lambda a: asyncio.run(
            a.dkim.generate("example.test", "bad_name")), Invalid, "invalid selector"),
    (lambda a: asyncio.run(a.dkim.generate("example.test", "k1")), Conflict, "already exists"),
    (lambda a: asyncio.run(
            a.dkim.activate("example.test", "k9")), NotFound, "no DKIM keys named k9"),
    (lambda a: asyncio.run(a.dkim.retire("example.test", "k9")), NotFound, "no DKIM keys named k9"),
    (lambda a: asyncio.run(a.dkim.list("other.test")), NotFound, "not a local domain"),
])
def test_dkim_refusals(example, call, error, text):
    asyncio.run(example.dkim.generate("example.test", "k1"))
    with pytest.raises(error, match=text):
        call(example)


# --- queue ------------------------------------------------------------------------


def _queue_one(admin, message_id: str = "Q1") -> None:
    if not hasattr(admin.ctx.store, "queue_messages"):
        pytest.skip("this backend has no queue yet")
    asyncio.run(admin.ctx.store.deliver(Delivery(
        message_id=message_id, mail_from="alice@example.test",
        remote=[RemoteRecipient("x@far.test"), RemoteRecipient("y@near.test"),
                RemoteRecipient("z@near.test")],
        relay_content=b"Subject: q\r\n\r\nx\r\n")))


def test_queue_list_and_show(example):
    _queue_one(example)
    overview = asyncio.run(example.queue.list())
    assert [m.message_id for m in overview.messages] == ["Q1"]
    assert overview.by_state == {"pending": 3}
    assert overview.by_destination == [("near.test", 2), ("far.test", 1)]
    entry = asyncio.run(example.queue.show("Q1"))
    assert [r.address for r in entry.message.recipients] == [
        "x@far.test", "y@near.test", "z@near.test"]
    assert entry.attempts == []
    with pytest.raises(NotFound, match="no queued message NOPE"):
        asyncio.run(example.queue.show("NOPE"))


def test_queue_hold_release_retry_flush(example):
    _queue_one(example)
    held = asyncio.run(example.queue.hold("Q1"))
    assert (held.recipients, held.state) == (3, "held")
    assert asyncio.run(example.queue.list()).by_state == {"held": 3}
    assert asyncio.run(example.queue.release(all_messages=True)).recipients == 3
    assert asyncio.run(example.queue.list()).by_state == {"pending": 3}
    assert asyncio.run(example.queue.retry("Q1")).state == "pending"
    assert asyncio.run(example.queue.flush()).recipients == 3
    [r] = {r.next_attempt for r in asyncio.run(example.queue.show("Q1")).message.recipients}
    assert r == NOW                                             # due now, by the clock
    for action in (example.queue.hold, example.queue.release, example.queue.retry):
        with pytest.raises(Invalid, match="needs a message ID or --all"):
            asyncio.run(action())
        with pytest.raises(NotFound, match="no queued message NOPE"):
            asyncio.run(action("NOPE"))


def test_queue_delete(example):
    _queue_one(example)
    assert asyncio.run(example.queue.delete("Q1")) == "Q1"
    assert asyncio.run(example.queue.list()).messages == []
    with pytest.raises(NotFound, match="no queued message Q1"):
        asyncio.run(example.queue.delete("Q1"))


# --- DNS, config, demo ------------------------------------------------------------


def test_dns_records(example):
    asyncio.run(example.dkim.generate("example.test", "k1"))
    r = asyncio.run(example.dns.records("Example.test"))
    assert (r.domain, r.hostname) == ("example.test", "mx.example.test")
    by_name = {(x.name, x.type): x.value for x in r.records}
    assert by_name[("example.test", "MX")] == "10 mx.example.test."
    assert by_name[("k1-rsa._domainkey.example.test", "TXT")].startswith("v=DKIM1; k=rsa;")
    assert "mx: mx.example.test" in r.mta_sts_policy
    with pytest.raises(NotFound, match="not a local domain"):
        asyncio.run(example.dns.records("other.test"))


def test_dns_check_through_the_configured_resolver(tmp_path):
    from ..dnsserver import DNSServer
    dns = DNSServer()
    dns.add_records({})                              # an empty root: every name NXDOMAIN
    dns.start()
    try:
        cfg = _config(tmp_path, dns.port)
        store = open_store(cfg)
        try:
            admin = Admin(store, cfg, clock=lambda: NOW)
            asyncio.run(admin.domains.add("example.test"))
            report = asyncio.run(admin.dns.check("example.test"))
        finally:
            store.close()
    finally:
        dns.stop()
    statuses = {f.what: f.status for f in report.findings}
    assert statuses["MX"] == "missing" and statuses["DKIM"] == "missing"
    assert report.failed


def test_config_report(tmp_path):
    cfg = _config(tmp_path)
    r = config_check.report(cfg)
    assert (r.listeners, r.data_dir) == (1, tmp_path)


def test_demo_account_made_once(tmp_path):
    cfg = parse(CONFIG.format(data_dir=tmp_path, dns_port=53)
                + '[demo]\ndomain = "demo.test"\nuser = "me"\n')
    store = open_store(cfg)
    try:
        admin = Admin(store, cfg)
        first = asyncio.run(admin.ensure_demo())
        assert str(first.address) == "me@demo.test" and len(first.password) >= 16
        assert asyncio.run(store.credentials("me@demo.test")) is not None
        again = asyncio.run(admin.ensure_demo())
        assert again.address == first.address and again.password is None
    finally:
        store.close()


def test_no_demo_without_its_section(admin):
    assert asyncio.run(admin.ensure_demo()) is None
    assert asyncio.run(admin.domains.list()) == []
