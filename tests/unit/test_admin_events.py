"""admin.events on a real store of each backend: the filters checked (refusals name what is wrong),
cursors that walk every page, exports that parse back to the rows a search returns, and
pruning by the [events] policy of the configuration."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json

import pytest

from mailwright.address import parse_mailbox
from mailwright.admin import Admin, Invalid
from mailwright.admin.events import EXPORT_PAGE
from mailwright.config import parse
from mailwright.events.log import EventRow
from mailwright.events.types import Event

from .stored import config_text, written

NOW = 1_800_000_000.0          # 2027-01-15T08:00:00Z
DAY = 86400.0


def make_admin(make_store, extra: str = "", clock=lambda: NOW):
    store = make_store()
    cfg = parse(config_text(store, extra))
    return Admin(store, cfg, clock=clock)


@pytest.fixture
def admin(make_store):
    return make_admin(make_store)


def record(admin, rows: list[EventRow]) -> None:
    for row in rows:
        admin.ctx.store.record_event(row)
    written(admin.ctx.store)


def ev(ts: float, type: str = "delivered", **data) -> EventRow:
    return EventRow.of(ts, type, None, data.pop("message_id", None), data)


def search(admin, **kw):
    return asyncio.run(admin.events.search(**kw))


def export(admin, **kw) -> str:
    async def run():
        return "".join([c async for c in await admin.events.export(**kw)])
    return asyncio.run(run())


@pytest.mark.parametrize("kw, message", [
    (dict(since="yesterday"), "invalid since 'yesterday': expected seconds since the epoch "
                              "or an ISO 8601 time"),
    (dict(until="2026-13-01"), "invalid until"),
    (dict(since="nan"), "expected a finite time"),
    (dict(since=10, until=10), "since must be before until"),
    (dict(types=["delivered", "deliverd"]), "unknown event type 'deliverd'; known types: "),
    (dict(limit=0), "invalid limit 0: expected 1 to 1000"),
    (dict(limit=1001), "invalid limit 1001"),
    (dict(limit=True), "invalid limit True"),
    (dict(cursor="not-a-cursor"), "invalid cursor"),
    (dict(cursor=base64.urlsafe_b64encode(b'["x", 2]').decode()), "invalid cursor"),
    # Well-formed, but past SQLite's 64-bit rowids (binding it raised OverflowError).
    (dict(cursor=base64.urlsafe_b64encode(b'[1.0, 18446744073709551616]').decode()),
     "invalid cursor"),
    (dict(domain="no..dots"), "invalid domain"),
    (dict(address="  "), "empty address"),
    (dict(tag=""), "empty tag"),
])
def test_search_refusals_name_the_problem(admin, kw, message):
    with pytest.raises(Invalid) as e:
        search(admin, **kw)
    assert message in str(e.value)


def test_unknown_type_lists_every_known_type(admin):
    with pytest.raises(Invalid) as e:
        search(admin, types="nope")
    assert all(t.value in str(e.value) for t in Event)


def test_times_as_epoch_seconds_or_iso_8601(admin):
    record(admin, [ev(NOW - 60, rcpt="a@x.test"), ev(NOW, rcpt="b@x.test")])
    for since in (NOW - 1, str(NOW - 1), "2027-01-15T07:59:59Z", "2027-01-15T07:59:59",
                  "2027-01-15T08:59:59+01:00", "20270115T075959Z"):
        assert [e.address for e in search(admin, since=since).events] == ["b@x.test"], since
    assert [e.address for e in search(admin, until="2027-01-15").events] == []
    assert len(search(admin, since="2027-01-15").events) == 2


def test_filters_in_the_form_rows_keep_them(admin):
    # Addresses as the emitters give them (str(Address)): the domain an A-label.
    record(admin, [ev(NOW, rcpt=str(parse_mailbox("Dörte@Bücher.test")), tag="spring"),
                   ev(NOW, "auth-fail", ip="127.0.0.1", protocol="imap", mechanism="PLAIN",
                      username="Admin"),
                   ev(NOW, "accepted", ip="127.0.0.1", size=1, mail_from="s@x.test", rcpts=1,
                      local=1, remote=0, account="", tls="", domain="example.test")])
    assert len(search(admin, address="dörte@BÜCHER.test").events) == 1
    assert len(search(admin, domain="Bücher.TEST").events) == 1
    assert len(search(admin, address="admin").events) == 1           # a login, not an address
    assert len(search(admin, domain="example.test", types="accepted,delivered").events) == 1
    assert len(search(admin, types=["Auth-Fail"]).events) == 1
    assert len(search(admin, tag="spring").events) == 1
    assert len(search(admin, tag="Spring").events) == 0             # tags are exact


def test_cursor_walks_every_page_once(admin):
    record(admin, [ev(NOW - i // 3, rcpt=f"u{i}@x.test") for i in range(20)])   # ties
    seen, cursor = [], None
    for _ in range(20):
        page = search(admin, limit=6, cursor=cursor)
        seen += [e.id for e in page.events]
        cursor = page.next
        if cursor is None:
            break
    everything = search(admin, limit=1000).events
    assert seen == [e.id for e in everything] and len(seen) == 20


def test_exports_parse_back_to_the_searched_rows(admin):
    odd = {"reply": 'a "quoted", comma\r\nand a second line', "tag": "t,1"}
    rows = [ev(NOW - i, rcpt=f"u{i}@x.test", **odd) for i in range(EXPORT_PAGE * 2 + 5)]
    rows.append(ev(NOW - 10_000, "dsn", to="x@y.test", actions="failed"))
    record(admin, rows)
    expected = []
    cursor = None
    while True:
        page = search(admin, limit=1000, cursor=cursor)
        expected += [e.__dict__ for e in page.events]
        if not (cursor := page.next):
            break
    assert len(expected) == len(rows)
    jsonl = export(admin)
    assert [json.loads(line) for line in jsonl.splitlines()] == expected
    table = list(csv.DictReader(io.StringIO(export(admin, format="csv"), newline="")))
    assert [{**r, "id": int(r["id"]), "ts": float(r["ts"]), "data": json.loads(r["data"]),
             **{k: r[k] or None for k in ("session", "message_id", "address", "domain", "tag")}}
            for r in table] == expected
    # Filters apply to exports as to searches.
    assert [json.loads(x)["type"] for x in export(admin, types="dsn").splitlines()] == ["dsn"]


def test_export_refuses_before_the_first_chunk(admin):
    with pytest.raises(Invalid, match="unknown export format 'xml'"):
        asyncio.run(admin.events.export(format="xml"))
    with pytest.raises(Invalid, match="invalid since"):
        asyncio.run(admin.events.export(since="soon"))
    assert export(admin, format="csv").splitlines() == [
        "id,ts,type,session,message_id,address,domain,tag,data"]     # no rows: the header
    assert export(admin) == ""


def test_prune_follows_the_configured_policy(make_store):
    admin = make_admin(make_store, """
[events]
retention_days = 30
prune_batch = 7
[events.domains."short.test"]
retention_days = 2
[events.domains."Forever.test"]
retention_days = "unlimited"
""")
    if not hasattr(admin.ctx.store, "prune_finished"):
        pytest.skip("this backend has no queue yet (prune_finished)")
    ages = (1, 3, 29, 31, 400)
    record(admin, [ev(NOW - age * DAY - 1, rcpt=f"u@{d}", message_id=f"{d}/{age}")
                   for d in ("short.test", "forever.test", "other.test") for age in ages]
           + [ev(NOW - 31 * DAY, "imap-connect", ip="::1", tls="", message_id="none/31")])
    done = asyncio.run(admin.events.prune())
    left = {e.message_id for e in search(admin, limit=1000).events}
    assert left == {"short.test/1",
                    *(f"forever.test/{a}" for a in ages),
                    "other.test/1", "other.test/3", "other.test/29"}
    assert (done.events, done.messages) == (16 - len(left), 0)
