"""/api/v1/events, /api/v1/webhooks and /metrics against a real server, after real
mail (sent over the API and received over SMTP): every search filter, cursor pages
walked to the end, exports that parse back to the rows of a search, and who sees what;
an endpoint registered over the API gets signed events (README's `verify`) and its
delivery log shows them; /metrics with [http] metrics_auth = "key"."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import smtplib
from datetime import datetime, timedelta

import httpx
import pytest

from ..webhook_receiver import Receiver
from .apiserver import ApiServer, error_of, ok, provision, scrape, total
from .test_relay import wait_for
from .test_webhooks import send as smtp_send

A, B = "example.test", "other.test"
ALICE, BOB, CAROL = f"alice@{A}", f"bob@{A}", f"carol@{B}"
EPOCH = datetime(1970, 1, 1)          # naive: ISO 8601 without a zone is UTC here
FAST = "first_retry = 0.2\nmax_retry = 0.5\ntimeout = 5.0\n"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("events"),
                    extra=f'[http]\nmetrics_auth = "key"\n[webhooks]\n{FAST}')
    root = srv.create_key("root", "admin")
    srv.start()
    try:
        provision(srv, root, (A, B), (ALICE, BOB, CAROL), key_domain=A)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def admin(api):
    with api.client(api.tokens["admin"]) as c:
        yield c


def send(client: httpx.Client, sender: str, rcpt: str, tag: str | None = None) -> str:
    """One message over the API; its queue id (the events' message_id)."""
    body = {"from": sender, "to": [rcpt], "subject": "events", "text": "hello\n"}
    return ok(client.post("/messages", json={**body, "tag": tag} if tag else body), 201)["id"]


def search(client: httpx.Client, **params) -> list[dict]:
    """Every matching event, one page of up to 1000."""
    page = ok(client.get("/events", params={"limit": 1000, **params}))
    assert page["next"] is None, "more than one page"
    return page["events"]


def ids(events: list[dict]) -> list[str]:
    return [e["message_id"] for e in events]


@pytest.fixture(scope="module")
def mail(api, admin):
    """Mail for both domains, tagged in batches, and some received over SMTP with a
    refused recipient; the queue ids by what they were, oldest first."""
    made = {"batch": [send(admin, ALICE, BOB, "batch-1") for _ in range(3)],
            "other": [send(admin, CAROL, CAROL, "b-news") for _ in range(2)],
            "inbound": smtp_send(api, 2),
            "spaced": [send(admin, ALICE, BOB, "  spaced out ")]}
    with smtplib.SMTP("127.0.0.1", api.ports["mx"], timeout=10) as s:
        s.ehlo("client.remote.test")
        s.mail("sender@remote.test")
        assert s.rcpt(f"nobody@{A}")[0] == 550
    # Rows reach the table with the writer's next batch, just after the answer.
    everything = [m for ms in made.values() for m in ms]
    wait_for(lambda: set(everything) <= set(ids(search(admin, type="accepted"))))
    wait_for(lambda: search(admin, type="rejected", address=f"nobody@{A}"))
    return made


# --- search ------------------------------------------------------------------------

def test_search_filters(api, admin, mail):
    batch, other, inbound = mail["batch"], mail["other"], mail["inbound"]
    # Newest first; ids are time-ordered.
    assert ids(search(admin, tag="batch-1")) == batch[::-1]
    assert all(e["tag"] == "batch-1" and e["type"] == "accepted"
               for e in search(admin, tag="batch-1"))

    # A tag is kept without surrounding blanks, and found with or without them.
    for tag in ("spaced out", " spaced out  "):
        assert ids(search(admin, tag=tag)) == mail["spaced"]
    assert search(admin, tag="spaced out")[0]["tag"] == "spaced out"

    accepted = search(admin, type="accepted")
    assert {e["type"] for e in accepted} == {"accepted"}
    assert set(batch + other + inbound) <= set(ids(accepted))

    [one] = search(admin, message_id=batch[1])
    assert one["type"] == "accepted" and one["data"]["account"] == ALICE
    assert one["address"] == ALICE and one["domain"] == A and one["tag"] == "batch-1"

    # Address: canonical and case-insensitive; the first of rcpt, account, mail_from.
    assert ids(search(admin, address="Carol@OTHER.test", type="accepted")) == other[::-1]
    assert ids(search(admin, address="sender@remote.test", type="accepted")) == inbound[::-1]
    [refused] = search(admin, type="rejected", address=f"nobody@{A}")
    assert refused["data"]["reason"] == "unknown-user" and refused["data"]["code"] == 550

    by_domain = search(admin, domain=B.upper())
    assert by_domain and {e["domain"] for e in by_domain} == {B}
    assert set(other) <= set(ids(by_domain))
    assert not set(batch + inbound) & set(ids(by_domain))

    # Several types: either.
    both = search(admin, type=["accepted", "rejected"])
    assert {e["type"] for e in both} == {"accepted", "rejected"}
    assert len(both) == len(accepted) + len(search(admin, type="rejected"))
    assert search(admin, type="accepted,rejected") == both

    # A time range: since inclusive, until exclusive; epoch seconds or ISO 8601 (UTC).
    rows = search(admin, type="accepted")[::-1]                 # oldest first
    since, until = rows[1]["ts"], rows[4]["ts"]
    window = [e for e in rows if since <= e["ts"] < until][::-1]
    assert [e["id"] for e in window] == [e["id"] for e in rows[1:4]][::-1]
    assert search(admin, type="accepted", since=repr(since), until=repr(until)) == window
    # ISO 8601 to the microsecond, rounded down: still before rows[1], after rows[0].
    iso = (EPOCH + timedelta(microseconds=math.floor(since * 1e6))).isoformat()
    assert not iso.endswith("+00:00") and rows[0]["ts"] < since - 1e-3
    assert search(admin, type="accepted", since=iso, until=repr(until)) == window
    assert search(admin, type="accepted", since=repr(until + 3600)) == []


def make_cursor(key: list) -> str:
    """A cursor as admin/events.py makes one: its (ts, id) in base64url JSON."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def test_bad_filters_get_the_error_shape(api, admin, mail):
    for params, mentions in (({"type": "bogus"}, "unknown event type 'bogus'"),
                             ({"since": "yesterday"}, "invalid since 'yesterday'"),
                             ({"since": "2", "until": "1"}, "since must be before until"),
                             ({"cursor": "xyz"}, "invalid cursor"),
                             # Well-formed, but no rowid is that large (SQLite: 64 bits).
                             ({"cursor": make_cursor([1.0, 2**70])}, "invalid cursor"),
                             ({"cursor": make_cursor([1.0, -2**70])}, "invalid cursor"),
                             ({"limit": "0"}, "query.limit"),
                             ({"limit": "1001"}, "query.limit"),
                             ({"domain": "not a domain"}, "domain"),
                             ({"address": ""}, "query.address")):
        err = error_of(admin.get("/events", params=params), 422)
        assert mentions in err["message"], (params, err)
        if "limit" not in params and "cursor" not in params:
            error_of(admin.get("/events/export", params=params), 422)
    error_of(admin.get("/events/export", params={"format": "xml"}), 422)


def walk(client: httpx.Client, limit: int, **params) -> list[dict]:
    """Every page, following `next` to the end (bounded)."""
    rows: list[dict] = []
    cursor = None
    for _ in range(1000):
        page = ok(client.get("/events", params={
            "limit": limit, **params, **({"cursor": cursor} if cursor else {})}))
        assert len(page["events"]) <= limit
        rows += page["events"]
        cursor = page["next"]
        if cursor is None:
            return rows
    raise AssertionError("the pages never ended")


def test_cursor_pages_walk_every_row_once(api, admin, mail):
    # Fixed at the newest row now: rows written while walking stay out of both lists.
    until = repr(search(admin)[0]["ts"] + 1e-3)
    whole = search(admin, until=until)
    assert len(whole) > 10
    for limit in (1, 3, 7):
        pages = walk(admin, limit, until=until)
        assert len({e["id"] for e in pages}) == len(pages)            # no duplicates
        assert pages == whole                                         # none missed
    assert walk(admin, 2, type="accepted", tag="batch-1") == search(admin, tag="batch-1")
    # A filter holds across pages.
    paged = walk(admin, 2, domain=A, until=until)
    assert paged == search(admin, domain=A, until=until)
    assert {e["domain"] for e in paged} == {A}


def parse_csv(text: str) -> list[dict]:
    """CSV rows typed back as the JSON rows are: empty cells are null, data is JSON."""
    rows = []
    for r in csv.DictReader(io.StringIO(text, newline="")):
        row = {k: (v if v != "" else None) for k, v in r.items()}
        row["id"], row["ts"] = int(row["id"]), float(row["ts"])
        row["data"] = json.loads(row["data"])
        rows.append(row)
    return rows


def test_exports_parse_back_to_the_rows_of_a_search(api, admin, mail):
    until = repr(search(admin)[0]["ts"] + 1e-3)
    for params in ({"until": until}, {"until": until, "domain": A},
                   {"type": "accepted", "tag": "batch-1"}):
        rows = search(admin, **params)
        r = admin.get("/events/export", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        assert 'filename="events.jsonl"' in r.headers["content-disposition"]
        assert [json.loads(line) for line in r.text.splitlines()] == rows
        r = admin.get("/events/export", params={**params, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.text.splitlines()[0] == "id,ts,type,session,message_id,address,domain,tag,data"
        assert parse_csv(r.text) == rows, params


def test_domain_admin_sees_its_domain_only_and_send_keys_none(api, admin, mail):
    until = repr(search(admin)[0]["ts"] + 1e-3)
    with api.client(api.tokens["domain-admin"]) as mine:
        seen = search(mine, until=until)
        assert seen == search(admin, domain=A, until=until)
        assert {e["domain"] for e in seen} == {A}
        assert set(mail["batch"] + mail["inbound"]) <= set(ids(seen))
        assert search(mine, domain=A, type="accepted", tag="batch-1") == \
            search(admin, tag="batch-1")
        # Another domain's events, even by message id, tag or address: not there.
        assert search(mine, message_id=mail["other"][0]) == []
        assert search(mine, tag="b-news") == []
        exported = mine.get("/events/export", params={"until": until})
        assert [json.loads(line) for line in exported.text.splitlines()] == seen
        for path in ("/events", "/events/export"):
            assert error_of(mine.get(path, params={"domain": B}), 403)["code"] == \
                "forbidden"
    with api.client(api.tokens["send"]) as sender:
        for path in ("/events", "/events/export"):
            assert error_of(sender.get(path), 403)["code"] == "forbidden"
            assert error_of(sender.get(path, params={"domain": A}), 403)["code"] == \
                "forbidden"


# --- webhooks -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def deliveries(client: httpx.Client, webhook: int, **params) -> list[dict]:
    return ok(client.get(f"/webhooks/{webhook}/deliveries", params=params))


def test_webhook_registered_over_the_api_gets_signed_events(api, admin, receiver):
    made = ok(admin.post("/webhooks", json={"url": receiver.url("/all"),
                                            "events": ["accepted"]}), 201)
    hook, secret = made["webhook"], made["secret"]
    assert secret.startswith("whsec_") and hook["domain"] is None and hook["enabled"]
    receiver.endpoint("/all", secret)
    # The secret is shown once: never again in a listing or a read.
    assert secret not in admin.get("/webhooks").text
    assert secret not in admin.get(f"/webhooks/{hook['id']}").text

    sent = send(admin, ALICE, BOB, "hooked")
    assert receiver.wait(lambda: receiver.got("/all", "accepted"))
    [got] = receiver.got("/all")
    assert got.signed                                     # README's verify
    assert got.body["message_id"] == sent and got.body["tag"] == "hooked"
    assert got.body["type"] == "accepted" and got.body["domain"] == A
    [event] = search(admin, message_id=sent)
    assert got.body["id"] == event["id"] and got.body["data"] == event["data"]

    [logged] = wait_for(lambda: deliveries(admin, hook["id"], state="delivered"))
    assert str(logged["id"]) == got.delivery == str(got.body["delivery"])
    assert logged["event_id"] == event["id"] and logged["event_type"] == "accepted"
    assert logged["attempts"] == 1 and logged["last_status"] == 200

    # Redelivered: the same delivery id and event, signed again.
    again = ok(admin.post(f"/webhooks/deliveries/{logged['id']}/redeliver"))
    assert again["id"] == logged["id"] and again["state"] == "pending"
    assert receiver.wait(lambda: len(receiver.got("/all")) == 2)
    second = receiver.got("/all")[1]
    assert second.signed and second.delivery == got.delivery
    assert second.body["id"] == event["id"]
    [logged] = wait_for(lambda: deliveries(admin, hook["id"], state="delivered"))
    assert logged["attempts"] == 2
    error_of(admin.post("/webhooks/deliveries/999999/redeliver"), 404)


def test_domain_admin_webhooks_are_its_domains_only(api, admin, receiver):
    made = ok(admin.post("/webhooks", json={"url": receiver.url("/global")}), 201)
    global_hook = made["webhook"]["id"]
    receiver.endpoint("/global", made["secret"])
    with api.client(api.tokens["domain-admin"]) as mine:
        for path in (f"/webhooks/{global_hook}", f"/webhooks/{global_hook}/deliveries"):
            assert error_of(mine.get(path), 404)["code"] == "not_found"
        for method, path in (("DELETE", ""), ("POST", "/disable"), ("POST", "/enable")):
            error_of(mine.request(method, f"/webhooks/{global_hook}{path}"), 404)
        assert global_hook not in [w["id"] for w in ok(mine.get("/webhooks"))]
        # Registering: not for every domain, not for another's.
        for body in ({"url": receiver.url("/mine")},
                     {"url": receiver.url("/mine"), "domain": None},
                     {"url": receiver.url("/mine"), "domain": B}):
            assert error_of(mine.post("/webhooks", json=body), 403)["code"] == "forbidden"
        made = ok(mine.post("/webhooks", json={"url": receiver.url("/mine"), "domain": A,
                                               "events": ["accepted"]}), 201)
        receiver.endpoint("/mine", made["secret"])
        assert [w["id"] for w in ok(mine.get("/webhooks"))] == [made["webhook"]["id"]]

        # Its endpoint gets its domain's events and no other's.
        theirs = send(admin, CAROL, CAROL)
        ours = send(admin, ALICE, BOB)
        assert receiver.wait(lambda: receiver.got("/mine"))
        assert receiver.wait(lambda: {theirs, ours} <= {
            r.body["message_id"] for r in receiver.got("/global", "accepted")})
        assert [r.body["message_id"] for r in receiver.got("/mine")] == [ours]
        assert receiver.got("/mine")[0].signed
        [logged] = wait_for(lambda: deliveries(mine, made["webhook"]["id"],
                                               state="delivered"))
        # A delivery of the global endpoint cannot be sent again by it.
        [global_delivery] = [d for d in deliveries(admin, global_hook, limit=1000)
                             if d["event_id"] == search(admin, message_id=ours)[0]["id"]]
        error_of(mine.post(f"/webhooks/deliveries/{global_delivery['id']}/redeliver"), 404)
        ok(mine.post(f"/webhooks/deliveries/{logged['id']}/redeliver"))


# --- /metrics with metrics_auth = "key" ----------------------------------------------

def test_metrics_need_an_admin_key(api, admin, mail):
    url = f"http://127.0.0.1:{api.ports['http']}/metrics"
    r = httpx.get(url, timeout=30)
    assert error_of(r, 401)["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    for scope in ("domain-admin", "send"):
        r = httpx.get(url, headers={"Authorization": f"Bearer {api.tokens[scope]}"},
                      timeout=30)
        assert error_of(r, 403)["code"] == "forbidden"
    # The counters start at zero with the server: they match the event log's rows.
    accepted = search(admin, type="accepted")
    samples = wait_for(lambda: (s := scrape(api, api.tokens["admin"])) and total(
        s, "mailwright_messages_accepted_total") == len(accepted) and s)
    for role in {e["data"]["role"] for e in accepted}:
        assert total(samples, "mailwright_messages_accepted_total", role=role) == \
            sum(e["data"]["role"] == role for e in accepted)
    assert total(samples, "mailwright_messages_rejected_total", reason="unknown-user") == 1
    assert total(samples, "mailwright_connections_total", role="mx") == \
        len(search(admin, type="smtp-connect"))
