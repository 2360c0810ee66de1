"""The HTTP API (/api/v1) against a real server: every route's round trip, checked
where it matters through the mail protocols (a password set over HTTP logs in over
IMAP; a bounce lands in the sender's INBOX); who may do what with which key, and that
a refused request changes nothing; the one error shape; TLS; the rate limit; and the
API with several worker processes."""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import smtplib
import ssl
import urllib.parse

import httpx
import pytest

from ..conftest import PASSWORD, free_port, loopback_dns
from .apiserver import ApiServer, error_of, ok
from .relaying import ZONE
from .test_relay import wait_for

# The loopback DNS test server's example.test zone (tests/data/zones) publishes MX
# mx1.example.test -> 127.0.0.2 (PTR back), and SPF ip4:127.0.0.2: with this hostname
# the live check finds those records; DKIM and DMARC are not published there.
HOST = "mx1.example.test"
A, B = "example.test", "other.test"
ALICE, BOB = f"alice@{A}", f"bob@{B}"
# Mail for REMOTE is routed by its MX to 127.0.0.1, on a port nobody listens on: every
# attempt is refused, and with a first retry an hour away it stays deferred.
REMOTE = "unreachable.test"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    loopback_dns().add_zone(REMOTE, ZONE.format(d=REMOTE, ip="127.0.0.1"))
    srv = ApiServer(tmp_path_factory.mktemp("api"), hostname=HOST,
                    extra=f"[queue]\nport = {free_port()}\ninterval = 0.5\n"
                          "first_retry = 3600.0\n")
    for domain in (A, B):
        srv.cli("domain", "add", domain)
    srv.add_user(ALICE)
    srv.add_user(BOB)
    srv.cli("alias", "add", f"postmaster@{A}", ALICE)
    srv.tokens = {"admin": srv.create_key("root", "admin"),
                  "domain-admin": srv.create_key("a admin", "domain-admin", A),
                  "send": srv.create_key("a sender", "send", A)}
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(api):
    with api.client(api.tokens["admin"]) as c:
        yield c


def imap_login(srv: ApiServer, user: str, password: str) -> bool:
    """Whether the server's IMAP (implicit TLS, its own CA verified) takes the login."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    with imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=ctx,
                           timeout=30) as m:
        try:
            m.login(user, password)
        except imaplib.IMAP4.error:
            return False
        m.logout()
        return True


def snapshot(admin: httpx.Client) -> dict:
    """What a refused request must leave as it was."""
    # A key's last_used moves with every use, refused or not: not part of the state.
    keys = [{k: v for k, v in key.items() if k != "last_used"} for key in ok(admin.get("/keys"))]
    state: dict = {"domains": ok(admin.get("/domains")), "keys": keys}
    for d in (A, B):
        state[d] = {part: ok(admin.get(f"/domains/{d}/{part}"))
                    for part in ("accounts", "aliases", "dkim")}
    state["quota"] = [ok(admin.get(f"/accounts/{a}/quota")) for a in (ALICE, BOB)]
    state["suppressions"] = ok(admin.get("/suppressions"))
    return state


# --- domains ---------------------------------------------------------------------

def test_domains_round_trip(api, admin):
    made = ok(admin.post("/domains", json={"name": "Bücher.TEST"}), 201)
    assert made == {"name": "xn--bcher-kva.test", "display": "bücher.test"}
    assert error_of(admin.post("/domains", json={"name": "bücher.test"}), 409)["code"] \
        == "conflict"
    assert made in ok(admin.get("/domains"))
    assert ok(admin.get("/domains/" + urllib.parse.quote("bücher.test"))) == made
    ok(admin.post("/accounts", json={"address": "kurt@bücher.test", "password": PASSWORD}),
       201)

    # A domain with an account is not removed by accident.
    err = error_of(admin.delete("/domains/xn--bcher-kva.test"), 409)
    assert err["code"] == "conflict"
    assert [a["address"] for a in ok(admin.get("/domains/xn--bcher-kva.test/accounts"))] \
        == ["kurt@xn--bcher-kva.test"]

    assert ok(admin.delete("/domains/xn--bcher-kva.test", params={"force": "true"})) == made
    assert error_of(admin.get("/domains/xn--bcher-kva.test"), 404)["code"] == "not_found"
    assert made not in ok(admin.get("/domains"))
    error_of(admin.get("/domains/xn--bcher-kva.test/accounts"), 404)
    assert not imap_login(api, "kurt@xn--bcher-kva.test", PASSWORD)
    error_of(admin.delete("/domains/xn--bcher-kva.test"), 404)
    error_of(admin.post("/domains", json={"name": "not a domain"}), 422)


def test_dns_records_and_live_check(api, admin):
    records = ok(admin.get(f"/domains/{A}/dns"))
    assert records["domain"] == A and records["hostname"] == HOST
    by_type = {(r["type"], r["name"]): r["value"] for r in records["records"]}
    assert HOST in by_type[("MX", A)]
    assert by_type[("TXT", f"_dmarc.{A}")].startswith("v=DMARC1")
    assert "mx: mx1.example.test" in records["mta_sts_policy"]

    # Resolved live through the loopback DNS test server's example.test zone.
    check = ok(admin.get(f"/domains/{A}/dns/check"))
    found = {f["what"]: f["status"] for f in check["findings"]}
    assert check["domain"] == A and check["ok"] is False
    assert found["MX"] == found["A/AAAA"] == found["SPF"] == found["PTR 127.0.0.2"] \
        == "found", check
    assert found["DMARC"] == "missing"
    # However far the DKIM test got: no DKIM key is published in that zone.
    assert {s for w, s in found.items() if w.startswith("DKIM")} == {"missing"}

    # A domain of ours outside every zone of the DNS test server, which refuses it:
    # an error, not a verdict on the records.
    other = ok(admin.get(f"/domains/{B}/dns/check"))
    mx = next(f for f in other["findings"] if f["what"] == "MX")
    assert other["ok"] is False and mx["status"] == "error" and "DNS error" in mx["detail"]
    error_of(admin.get("/domains/nowhere.test/dns"), 404)
    error_of(admin.get("/domains/nowhere.test/dns/check"), 404)


def test_domain_check_is_the_cli_report(api, admin):
    import jsonschema

    from mailwright.check.report import JSON_SCHEMA
    report = ok(admin.get(f"/domains/{A}/check", params={"only": "dns",
                                                         "allow_private": "true"}))
    jsonschema.validate(report, JSON_SCHEMA)
    graded = {}
    for f in report["findings"]:
        graded.setdefault(f["id"], set()).add(f["severity"])
    assert report["target"] == A and {f["category"] for f in report["findings"]} == {"dns"}
    assert graded["dns.mx.present"] == {"pass"} and graded["dns.dmarc.record"] == {"fail"}
    assert "pass" in graded["dns.ptr.fcrdns"]            # 127.0.0.2 <-> mx1.example.test
    assert report["exit_status"] == 2 and report["worst"] == "fail"
    error_of(admin.get(f"/domains/{A}/check", params={"only": "ftp"}), 422)
    error_of(admin.get("/domains/nowhere.test/check"), 404)


# --- accounts, aliases, DKIM -----------------------------------------------------

def test_accounts_round_trip_and_imap_login(api, admin):
    dave = f"dave@{A}"
    assert ok(admin.post("/accounts", json={"address": dave, "password": "first password"}),
              201) == {"address": dave}
    error_of(admin.post("/accounts", json={"address": dave, "password": "first password"}),
             409)
    error_of(admin.post("/accounts", json={"address": "x@nowhere.test",
                                           "password": "first password"}), 404)
    error_of(admin.post("/accounts", json={"address": f"y@{A}", "password": "short"}), 422)
    [listed] = [a for a in ok(admin.get(f"/domains/{A}/accounts")) if a["address"] == dave]
    assert listed["messages"] == 0 and listed["size"] == 0

    ok(admin.put(f"/accounts/{dave}/password", json={"password": "second password"}))
    assert imap_login(api, dave, "second password")
    assert not imap_login(api, dave, "first password")
    error_of(admin.put(f"/accounts/nobody@{A}/password", json={"password": "whatever pw"}),
             404)

    assert ok(admin.get(f"/accounts/{dave}/quota")) == {"address": dave, "limit": 0,
                                                       "used": 0, "messages": 0}
    assert ok(admin.put(f"/accounts/{dave}/quota", json={"limit": 10**6}))["limit"] == 10**6
    assert ok(admin.get(f"/accounts/{dave}/quota"))["limit"] == 10**6
    error_of(admin.put(f"/accounts/{dave}/quota", json={"limit": -1}), 422)

    assert ok(admin.delete(f"/accounts/{dave}")) == {"address": dave}
    assert dave not in [a["address"] for a in ok(admin.get(f"/domains/{A}/accounts"))]
    error_of(admin.get(f"/accounts/{dave}/quota"), 404)
    error_of(admin.delete(f"/accounts/{dave}"), 404)
    assert not imap_login(api, dave, "second password")


def test_aliases_round_trip(api, admin):
    team = f"team@{A}"
    assert ok(admin.post("/aliases", json={"source": team, "targets": [ALICE]}), 201) \
        == {"source": team, "targets": [ALICE]}
    # Posting an existing alias adds targets to it.
    both = ok(admin.post("/aliases", json={"source": team, "targets": ["ext@far.example"]}),
              201)
    assert sorted(both["targets"]) == [ALICE, "ext@far.example"]
    catch_all = ok(admin.post("/aliases", json={"source": f"@{A}", "targets": [ALICE]}), 201)
    assert catch_all == {"source": f"@{A}", "targets": [ALICE]}
    listed = ok(admin.get(f"/domains/{A}/aliases"))
    assert catch_all in listed and both in listed

    assert ok(admin.delete(f"/aliases/@{A}")) == catch_all
    assert ok(admin.delete(f"/aliases/{team}")) == both
    error_of(admin.delete(f"/aliases/{team}"), 404)
    listed = ok(admin.get(f"/domains/{A}/aliases"))
    assert [a["source"] for a in listed] == [f"postmaster@{A}"]
    # An account's address cannot also be an alias.
    error_of(admin.post("/aliases", json={"source": ALICE, "targets": [BOB]}), 409)
    error_of(admin.post("/aliases", json={"source": f"x@{A}", "targets": ["no address"]}),
             422)
    error_of(admin.post("/aliases", json={"source": "no-domain", "targets": [ALICE]}), 422)


def test_dkim_generate_activate_retire(api, admin):
    base = f"/domains/{A}/dkim"
    first = ok(admin.post(base, json={"name": "k1"}), 201)
    assert first["name"] == "k1" and first["active"] is True       # the domain had none
    assert {k["selector"] for k in first["keys"]} == {"k1-rsa", "k1-ed25519"}
    assert {k["algorithm"] for k in first["keys"]} == {"rsa-sha256", "ed25519-sha256"}
    error_of(admin.post(base, json={"name": "k1"}), 409)
    second = ok(admin.post(base, json={"name": "k2"}), 201)
    assert second["active"] is False                                 # rotation: published
    published = {r["name"] for r in ok(admin.get(f"/domains/{A}/dns"))["records"]}
    assert f"k2-rsa._domainkey.{A}" in published

    listed = {k["selector"]: k["active"] for k in ok(admin.get(base))}
    assert listed == {"k1-rsa": True, "k1-ed25519": True, "k2-rsa": False,
                      "k2-ed25519": False}
    # The signing set stays until another signs.
    error_of(admin.delete(f"{base}/k1"), 409)
    assert ok(admin.post(f"{base}/k2/activate"))["active"] is True
    assert ok(admin.delete(f"{base}/k1"))["name"] == "k1"
    assert {k["selector"] for k in ok(admin.get(base))} == {"k2-rsa", "k2-ed25519"}
    error_of(admin.post(f"{base}/k1/activate"), 404)
    error_of(admin.delete(f"{base}/k1"), 404)
    error_of(admin.post(base, json={"name": "bad_name"}), 422)
    error_of(admin.get("/domains/nowhere.test/dkim"), 404)


# --- the queue -------------------------------------------------------------------

def submit(srv: ApiServer, rcpt: str, subject: str) -> None:
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=ctx,
                          timeout=30) as s:
        s.login(ALICE, PASSWORD)
        s.sendmail(ALICE, [rcpt], f"From: {ALICE}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                                  "\r\nfor the queue\r\n")


def queued(client: httpx.Client, rcpt: str, state: str = "deferred") -> dict | None:
    """The queued message for rcpt once its recipient is in `state`."""
    for m in ok(client.get("/queue", params={"state": state}))["messages"]:
        if [r["address"] for r in m["recipients"]] == [rcpt]:
            return m
    return None


def recipient_state(client: httpx.Client, message_id: str) -> str:
    [r] = ok(client.get(f"/queue/{message_id}"))["message"]["recipients"]
    return r["state"]


def dsns(srv: ApiServer) -> list[email.message.EmailMessage]:
    """Delivery status notifications in alice's INBOX (RFC 3464)."""
    found = []
    for raw in srv.inbox(ALICE):
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if msg.get_content_type() == "multipart/report":
            found.append(msg)
    return found


def test_queue_filters_hold_release_retry_bounce_delete(api, admin):
    kept, dropped = f"kept@{REMOTE}", f"dropped@{REMOTE}"
    submit(api, kept, "bounce me")
    submit(api, dropped, "delete me")
    message = wait_for(lambda: queued(admin, kept))
    other = wait_for(lambda: queued(admin, dropped))
    mid = message["message_id"]
    assert message["mail_from"] == ALICE and message["recipients"][0]["next_attempt"]

    # Filters.
    def ids(**params) -> set[str]:
        return {m["message_id"] for m in ok(admin.get("/queue", params=params))["messages"]}
    both = {mid, other["message_id"]}
    assert ids(state="deferred") >= both
    assert ids(sender=ALICE, domain=REMOTE) >= both
    assert not ids(state="held") & both
    assert not ids(sender=BOB) & both
    assert not ids(domain=B) & both
    assert len(ids(limit=1)) == 1
    overview = ok(admin.get("/queue", params={"domain": REMOTE}))
    assert overview["by_destination"][REMOTE] >= 2 and overview["by_state"]["deferred"] >= 2

    entry = ok(admin.get(f"/queue/{mid}"))
    assert entry["message"]["message_id"] == mid
    assert entry["attempts"] and entry["attempts"][0]["address"] == kept

    # Hold, then release: the runner takes it up again at once (and defers it again).
    assert ok(admin.post(f"/queue/{mid}/hold")) == {"recipients": 1, "state": "held"}
    assert recipient_state(admin, mid) == "held"
    assert mid in ids(state="held")
    assert ok(admin.post(f"/queue/{mid}/release")) == {"recipients": 1, "state": "pending"}
    wait_for(lambda: recipient_state(admin, mid) == "deferred")
    assert ok(admin.post(f"/queue/{mid}/retry")) == {"recipients": 1, "state": "pending"}
    wait_for(lambda: recipient_state(admin, mid) == "deferred")

    # Deleted: gone, and no bounce for it.
    assert ok(admin.delete(f"/queue/{other['message_id']}")) == {"recipients": 1,
                                                                 "state": "deleted"}
    error_of(admin.get(f"/queue/{other['message_id']}"), 404)
    error_of(admin.delete(f"/queue/{other['message_id']}"), 404)

    # Bounced: alice gets the DSN, and it is out of the queue.
    assert ok(admin.post(f"/queue/{mid}/bounce")) == {"recipients": 1, "state": "bounced"}
    [dsn] = wait_for(lambda: dsns(api))
    status = dsn.get_payload()[1].get_payload()
    assert status[1]["Final-Recipient"] == f"rfc822; {kept}"
    assert status[1]["Action"] == "failed" and status[1]["Status"] == "5.0.0"
    assert b"delete me" not in dsn.as_bytes()
    assert mid not in ids()
    error_of(admin.post(f"/queue/{mid}/hold"), 404)
    error_of(admin.post("/queue/no-such-id/retry"), 404)


def test_queue_seen_by_domain_admins_of_the_sender_only(api, admin):
    rcpt = f"scoped@{REMOTE}"
    submit(api, rcpt, "scoped")
    mid = wait_for(lambda: queued(admin, rcpt))["message_id"]
    b_token = ok(admin.post("/keys", json={"name": "b admin", "scope": "domain-admin",
                                           "domains": [B]}), 201)["token"]
    with api.client(api.tokens["domain-admin"]) as mine, api.client(b_token) as theirs:
        assert queued(mine, rcpt)["message_id"] == mid
        assert ok(mine.get(f"/queue/{mid}"))["message"]["message_id"] == mid
        # B's admin cannot tell the message exists, let alone touch it.
        assert queued(theirs, rcpt) is None
        for method, path in (("GET", ""), ("POST", "/hold"), ("POST", "/bounce"),
                             ("DELETE", "")):
            error_of(theirs.request(method, f"/queue/{mid}{path}"), 404)
        assert recipient_state(admin, mid) == "deferred"
        ok(mine.delete(f"/queue/{mid}"))
    error_of(admin.get(f"/queue/{mid}"), 404)


# --- API keys --------------------------------------------------------------------

def test_keys_create_list_revoke(api, admin):
    made = ok(admin.post("/keys", json={"name": "billing", "scope": "domain-admin",
                                        "domains": [A.upper()]}), 201)
    token, key = made["token"], made["key"]
    assert re.fullmatch(rf"mw_{key['prefix']}_[A-Za-z0-9_-]{{43}}", token)
    assert key["scope"] == "domain-admin" and key["domains"] == [A]
    assert key["revoked"] is None
    # The token is shown once: no listing has it.
    listing = admin.get("/keys")
    secret = token.removeprefix(f"mw_{key['prefix']}_")  # may itself contain "_"
    assert token not in listing.text and secret not in listing.text
    assert [k for k in ok(listing) if k["id"] == key["id"]][0]["name"] == "billing"

    with api.client(token) as billing:
        assert ok(billing.get("/domains")) == [{"name": A, "display": A}]
        revoked = ok(admin.delete(f"/keys/{key['id']}"))
        assert revoked["id"] == key["id"] and revoked["revoked"] is not None
        r = billing.get("/domains")
        assert error_of(r, 401)["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert [k for k in ok(admin.get("/keys")) if k["id"] == key["id"]][0]["revoked"]

    error_of(admin.delete("/keys/999999"), 404)
    error_of(admin.post("/keys", json={"name": "x", "scope": "admin", "domains": [A]}), 422)
    error_of(admin.post("/keys", json={"name": "x", "scope": "send"}), 422)
    error_of(admin.post("/keys", json={"name": "x", "scope": "root"}), 422)
    error_of(admin.post("/keys", json={"name": "x", "scope": "send",
                                       "domains": ["nowhere.test"]}), 404)


# --- who may do what -------------------------------------------------------------

def _revoked_token(srv: ApiServer) -> str:
    """A key made and revoked with the CLI while the server runs."""
    first, token = srv.cli("apikey", "create", "soon revoked", "--scope", "admin"
                           ).stdout.splitlines()[-2:]
    key_id = re.fullmatch(r"created API key (\d+) .*", first)[1]
    srv.cli("apikey", "revoke", key_id)
    return token


@pytest.mark.parametrize("authorization", [
    None,                                            # no header
    "Basic YWxpY2U6cGFzc3dvcmQ=",                   # another scheme
    "Bearer",                                        # no token
    "Bearer not-a-token",                            # malformed
    "Bearer mw_0123456789ab_" + "A" * 43,            # well-formed, unknown
    "revoked",
])
def test_requests_without_a_valid_key_are_refused(api, admin, authorization):
    if authorization == "revoked":
        authorization = f"Bearer {_revoked_token(api)}"
    headers = {"Authorization": authorization} if authorization else {}
    before = ok(admin.get("/domains"))
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as anonymous:
        # A body is read before the key is checked: a malformed one still gets the 401.
        for r in (anonymous.get("/domains"),
                  anonymous.post("/domains", json={"name": "sneaky.test"}),
                  anonymous.post("/domains", content=b'{"name": ',
                                 headers={"Content-Type": "application/json"}),
                  anonymous.put(f"/accounts/{ALICE}/quota", content=b"\xff",
                                headers={"Content-Type": "application/json"})):
            # RFC 6750 §3: the challenge names the scheme.
            assert error_of(r, 401)["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert ok(admin.get("/domains")) == before


def test_domain_admin_manages_its_domain_only(api, admin):
    with api.client(api.tokens["domain-admin"]) as mine:
        # Its own domain: accounts, aliases, DKIM keys.
        erin = f"erin@{A}"
        ok(mine.post("/accounts", json={"address": erin, "password": PASSWORD}), 201)
        assert erin in [a["address"] for a in ok(mine.get(f"/domains/{A}/accounts"))]
        ok(mine.put(f"/accounts/{erin}/quota", json={"limit": 5000}))
        ok(mine.delete(f"/accounts/{erin}"))
        ok(mine.get(f"/domains/{A}/dns"))
        assert ok(mine.get(f"/domains/{A}")) == {"name": A, "display": A}
        assert ok(mine.get("/domains")) == [{"name": A, "display": A}]

        before = snapshot(admin)
        refused = [
            mine.post("/accounts", json={"address": f"new@{B}", "password": PASSWORD}),
            mine.get(f"/domains/{B}/accounts"),
            mine.get(f"/domains/{B}"),
            mine.put(f"/accounts/{BOB}/password", json={"password": "taken over"}),
            mine.put(f"/accounts/{BOB}/quota", json={"limit": 1}),
            mine.delete(f"/accounts/{BOB}"),
            mine.post("/aliases", json={"source": f"@{B}", "targets": [ALICE]}),
            mine.get(f"/domains/{B}/aliases"),
            mine.post(f"/domains/{B}/dkim", json={"name": "evil"}),
            mine.get(f"/domains/{B}/dns"),
            mine.get(f"/domains/{B}/check", params={"only": "dns"}),
            # Admin-only, even for its own domain.
            mine.post("/domains", json={"name": "mine.test"}),
            mine.delete(f"/domains/{A}", params={"force": "true"}),
            mine.get("/keys"),
            mine.post("/keys", json={"name": "escalate", "scope": "admin"}),
            mine.delete("/keys/1"),
        ]
        for r in refused:
            assert error_of(r, 403)["code"] == "forbidden", r.request.url
        # A domain it does not have is not told apart from one it may not see.
        error_of(mine.get("/domains/nowhere.test"), 403)
    assert snapshot(admin) == before
    assert imap_login(api, BOB, PASSWORD)


# Every operation but sending, with a body it would accept, as the send key tries it.
# The values are filled in from the fixture's domain, account, alias and a key's id.
ADMIN_OPERATIONS = [
    ("GET", "/domains", None),
    ("POST", "/domains", {"name": "sent.test"}),
    ("GET", "/domains/{domain}", None),
    ("DELETE", "/domains/{domain}", None),
    ("GET", "/domains/{domain}/dns", None),
    ("GET", "/domains/{domain}/dns/check", None),
    ("GET", "/domains/{domain}/check", None),
    ("GET", "/domains/{domain}/accounts", None),
    ("POST", "/accounts", {"address": "sent@{domain}", "password": PASSWORD}),
    ("PUT", "/accounts/{address}/password", {"password": "taken over"}),
    ("GET", "/accounts/{address}/quota", None),
    ("PUT", "/accounts/{address}/quota", {"limit": 1}),
    ("DELETE", "/accounts/{address}", None),
    ("GET", "/domains/{domain}/aliases", None),
    ("POST", "/aliases", {"source": "@{domain}", "targets": ["{address}"]}),
    ("DELETE", "/aliases/{source}", None),
    ("GET", "/domains/{domain}/dkim", None),
    ("POST", "/domains/{domain}/dkim", {"name": "sent"}),
    ("POST", "/domains/{domain}/dkim/{name}/activate", None),
    ("DELETE", "/domains/{domain}/dkim/{name}", None),
    ("GET", "/queue", None),
    ("GET", "/queue/{message_id}", None),
    ("POST", "/queue/{message_id}/retry", None),
    ("POST", "/queue/{message_id}/hold", None),
    ("POST", "/queue/{message_id}/release", None),
    ("POST", "/queue/{message_id}/bounce", None),
    ("DELETE", "/queue/{message_id}", None),
    ("GET", "/queue/{message_id}/raw", None),
    ("GET", "/events", None),
    ("GET", "/events/export", None),
    ("GET", "/stats/traffic", None),
    ("GET", "/stats/summary", None),
    ("GET", "/webhooks", None),
    ("POST", "/webhooks", {"url": "http://127.0.0.1:9/hook", "domain": "{domain}"}),
    ("GET", "/webhooks/{webhook_id}", None),
    ("DELETE", "/webhooks/{webhook_id}", None),
    ("POST", "/webhooks/{webhook_id}/enable", None),
    ("POST", "/webhooks/{webhook_id}/disable", None),
    ("GET", "/webhooks/{webhook_id}/deliveries", None),
    ("POST", "/webhooks/deliveries/{delivery_id}/redeliver", None),
    ("GET", "/campaigns", None),
    ("GET", "/campaigns/{name}", None),
    ("GET", "/domains/{domain}/campaign-report", None),
    ("GET", "/suppressions", None),
    ("POST", "/suppressions", {"domain": "{domain}", "address": "x@remote.test"}),
    ("DELETE", "/suppressions/{domain}/{address}", None),
    ("GET", "/keys", None),
    ("POST", "/keys", {"name": "escalate", "scope": "admin"}),
    ("DELETE", "/keys/{key_id}", None),
]
SEND_OPERATIONS = {("POST", "/messages")}
# Not under /api/v1, and open to scrapers on loopback without a key ([http] metrics_auth).
OPEN_ON_LOOPBACK = {("GET", "/metrics")}


def _fill(value, values: dict):
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def test_send_key_is_refused_every_admin_operation(api, admin):
    documented = {(method.upper(), path.removeprefix("/api/v1"))
                  for path, item in ok(admin.get("/openapi.json"))["paths"].items()
                  for method in item}
    listed = {(method, path) for method, path, _ in ADMIN_OPERATIONS}
    missing = documented - listed - SEND_OPERATIONS - OPEN_ON_LOOPBACK
    assert not missing, f"add these operations to ADMIN_OPERATIONS: {sorted(missing)}"

    values = {"domain": A, "address": ALICE, "source": f"postmaster@{A}", "name": "k9",
              "message_id": "0" * 16, "webhook_id": 1, "delivery_id": 1,
              "key_id": ok(admin.get("/keys"))[0]["id"]}
    before = snapshot(admin)
    with api.client(api.tokens["send"]) as sender:
        for method, path, body in ADMIN_OPERATIONS:
            r = sender.request(method, _fill(path, values),
                               json=_fill(body, values) if body is not None else None)
            assert error_of(r, 403)["code"] == "forbidden", (method, path)
    assert snapshot(admin) == before
    assert imap_login(api, ALICE, PASSWORD)


# --- errors ------------------------------------------------------------------------

def test_bad_requests_get_the_error_shape(api, admin):
    json_type = {"Content-Type": "application/json"}
    cases = [
        (admin.post("/domains", content=b'{"name": ', headers=json_type), 422,
         "body: not valid JSON at offset 9"),
        (admin.post("/domains", content=b'"\xff"', headers=json_type), 422, "UTF-8"),
        (admin.post("/domains", content=b"name=x.test",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}), 422, ""),
        (admin.post("/domains", json=["x.test"]), 422, "body"),
        (admin.post("/accounts", json={"address": 5, "password": ["x"]}), 422,
         "body.address"),
        (admin.post("/aliases", json={}), 422, "body.targets"),
        (admin.put(f"/accounts/{ALICE}/quota", json={"limit": "lots"}), 422, "body.limit"),
        (admin.get("/queue", params={"limit": "many"}), 422, "query.limit"),
        (admin.get("/queue", params={"state": "lost"}), 422, "query.state"),
        (admin.delete("/keys/abc"), 422, "path.key_id"),
        (admin.get("/no/such/route"), 404, ""),
        (admin.get(f"http://127.0.0.1:{api.ports['http']}/elsewhere"), 404, ""),
        (admin.patch("/domains", json={}), 405, ""),
        (admin.delete("/keys"), 405, ""),
        (admin.post(f"/queue/{'0' * 16}"), 405, ""),
        # RFC 7493 §2.1: a lone surrogate escape is no character; every route with a
        # body refuses it (once a 500 wherever a field had no length constraint).
        (admin.post("/aliases", content=b'{"source": "x@example.test", "targets": '
                    b'["\\ud800@example.test"]}', headers=json_type), 422,
         "body.targets[0] holds an unpaired UTF-16 surrogate"),
        (admin.post("/keys", content=b'{"name": "\\udfff", "scope": "admin"}',
                    headers=json_type), 422, "body.name holds an unpaired"),
        (admin.post(f"/domains/{A}/dkim", content=b'{"name": "k\\ud800"}',
                    headers=json_type), 422, "body.name holds an unpaired"),
        (admin.post("/webhooks", content=b'{"url": "http://127.0.0.1:9/", "events": '
                    b'["\\ud800"]}', headers=json_type), 422, "body.events[0]"),
    ]
    for r, status, mentions in cases:
        err = error_of(r, status)
        assert mentions in err["message"], (r.request.url, err)
    # RFC 9110 §15.5.6: Allow names every method of the resource, not of one route.
    allowed = [r.headers["allow"] for r, status, _ in cases if status == 405]
    assert allowed == ["GET, POST", "GET, POST", "DELETE, GET"]
    assert ok(admin.get(f"/accounts/{ALICE}/quota"))["limit"] == 0


# --- transport ----------------------------------------------------------------------

def test_https_listener_verifies_with_the_servers_ca(api):
    with api.client(api.tokens["admin"], tls=True) as secure:
        r = secure.get("/domains")
    assert r.status_code == 200 and r.http_version == "HTTP/1.1"
    assert {"name": A, "display": A} in r.json()
    # The default trust store does not know the server's own CA.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.tls_url}/domains", timeout=10)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """Two worker processes, and 5 requests a minute per key."""
    srv = ApiServer(tmp_path_factory.mktemp("limited"), top="workers = 2",
                    extra="[http]\nrate_limit = 5\n")
    srv.tokens = {"burst": srv.create_key("burst", "admin"),
                  "other": srv.create_key("other", "admin"),
                  "workers": srv.create_key("workers", "admin")}
    srv.start()
    yield srv
    srv.stop()


def fresh_get(srv: ApiServer, token: str, path: str) -> httpx.Response:
    """Each on a new connection: with several workers, any process could accept it."""
    return httpx.get(f"{srv.url}{path}", headers={"Authorization": f"Bearer {token}"},
                     timeout=30)


def test_api_answers_with_two_workers(limited):
    statuses = [fresh_get(limited, limited.tokens["workers"], "/domains").status_code
                for _ in range(4)]
    assert statuses == [200] * 4
    assert "started 2 workers" in limited.log.read_text()


def test_rate_limit_per_key(limited):
    # A bucket of 5 refilled at 5 a minute: the 6th request in quick succession waits.
    # One process serves the API whatever `workers` is, so this is one bucket.
    statuses = [fresh_get(limited, limited.tokens["burst"], "/domains") for _ in range(6)]
    assert [r.status_code for r in statuses[:5]] == [200] * 5
    err = error_of(statuses[5], 429)
    assert err["code"] == "rate_limited"
    assert 1 <= int(statuses[5].headers["retry-after"]) <= 12
    # Another key has its own bucket.
    assert fresh_get(limited, limited.tokens["other"], "/domains").status_code == 200
