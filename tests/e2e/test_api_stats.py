"""/api/v1/stats against a real server, after real mail: received over SMTP (one
recipient refused), submitted over SMTP (implicit TLS, AUTH) and over the API, and
relayed by the queue to an SMTP peer (aiosmtpd on 127.0.0.1 through [[transports]])
that accepts one recipient, refuses one for good and one for now. The counts the
dashboard shows are exactly the mail that went through, per domain as well; a
domain-admin key sees only its domain's."""

from __future__ import annotations

import json
import re
import smtplib
import ssl

import pytest

from ..conftest import PASSWORD
from .apiserver import ApiServer, error_of, ok, provision
from .peer import Peer
from .test_relay import wait_for

A, B = "example.test", "other.test"
ALICE, BOB, CAROL = f"alice@{A}", f"bob@{A}", f"carol@{B}"
REMOTE = "remote.test"               # routed by [[transports]] to the peer
SERIES = ("received", "sent", "delivered", "deferred", "bounced", "rejected")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    # The remote side takes dave@, refuses gone@ (550) and slow@ (451).
    replies = {f"gone@{REMOTE}": "550 5.1.1 no such user",
               f"slow@{REMOTE}": "451 4.7.1 try later"}
    peer = Peer(replies.get)
    peer.controller.start()
    # first_retry: the deferred recipient stays deferred for the whole module.
    srv = ApiServer(tmp_path_factory.mktemp("stats"), extra=(
        "[queue]\ninterval = 0.5\nfirst_retry = 3600.0\n"
        + peer.transport(REMOTE)))
    root = srv.create_key("root", "admin")
    srv.start()
    try:
        provision(srv, root, (A, B), (ALICE, BOB, CAROL), key_domain=A)
        yield srv
    finally:
        srv.stop()
        peer.controller.stop()


@pytest.fixture(scope="module")
def admin(api):
    with api.client(api.tokens["admin"]) as c:
        yield c


@pytest.fixture(scope="module")
def mail(api, admin):
    """Two messages in for bob (and one refused recipient), alice's one message over
    SMTP submission to three remote recipients, carol's one over the API to one."""
    with smtplib.SMTP("127.0.0.1", api.ports["mx"], timeout=10) as s:
        s.ehlo("client.remote.test")
        for i in range(2):
            s.mail("sender@remote.test")
            assert s.rcpt(BOB)[0] == 250
            if i == 0:
                assert s.rcpt(f"nobody@{A}")[0] == 550
            assert s.data(f"Subject: in {i}\r\n\r\nhello\r\n".encode())[0] == 250
    ctx = ssl.create_default_context(cafile=str(api.ca))
    with smtplib.SMTP_SSL("127.0.0.1", api.ports["submissions"], context=ctx,
                          timeout=30) as s:
        s.login(ALICE, PASSWORD)
        rcpts = [f"{name}@{REMOTE}" for name in ("dave", "gone", "slow")]
        s.sendmail(ALICE, rcpts, f"From: {ALICE}\r\nSubject: out\r\n\r\nout\r\n")
    ok(admin.post("/messages", json={"from": CAROL, "to": [f"erin@{REMOTE}"],
                                     "subject": "api", "text": "out\n"}), 201)
    # Every outcome is in once both messages' recipients are final or deferred.
    wait_for(lambda: totals(admin, "24h") == EVERYTHING or None, timeout=60)


EVERYTHING = dict(received=2, sent=2, delivered=2, deferred=1, bounced=1, rejected=1)
OF_A = dict(received=2, sent=1, delivered=1, deferred=1, bounced=1, rejected=1)
OF_B = dict(received=0, sent=1, delivered=1, deferred=0, bounced=0, rejected=0)


def traffic(client, **params) -> dict:
    return ok(client.get("/stats/traffic", params=params))


def totals(client, span: str, **params) -> dict[str, int]:
    """Each series summed over its buckets (the test may cross an hour's end)."""
    t = traffic(client, span=span, **params)
    return {name: sum(counts) for name, counts in t["counts"].items()}


def test_traffic_counts_the_mail_that_went_through(api, admin, mail):
    hourly = traffic(admin)
    assert hourly["types"] == list(SERIES) and hourly["step"] == 3600
    assert hourly["start"] % 3600 == 0
    assert all(len(c) == 24 for c in hourly["counts"].values())
    daily = traffic(admin, span="30d")
    assert daily["step"] == 86400 and daily["start"] % 86400 == 0   # UTC midnight
    assert all(len(c) == 30 for c in daily["counts"].values())
    assert totals(admin, "30d") == totals(admin, "24h") == EVERYTHING
    # Everything happened in the last minute: in the current hour or the one before.
    assert sum(sum(c[:-2]) for c in hourly["counts"].values()) == 0


def test_traffic_per_domain(api, admin, mail):
    assert totals(admin, "24h", domain=A.upper()) == OF_A
    assert totals(admin, "30d", domain=B) == OF_B
    assert totals(admin, "24h", domain="nothing.test") == dict.fromkeys(SERIES, 0)


def test_summary(api, admin, mail):
    s = ok(admin.get("/stats/summary"))
    assert s == {"queue_size": 1, "delivered": 2, "failed": 1,
                 "success_rate": pytest.approx(2 / 3),
                 "top_rejections": [{"reason": "unknown-user", "count": 1}]}
    assert ok(admin.get("/stats/summary", params={"domain": B})) == {
        "queue_size": 0, "delivered": 1, "failed": 0, "success_rate": 1.0,
        "top_rejections": []}


def test_domain_admin_key_sees_its_domain_only(api, mail):
    with api.client(api.tokens["domain-admin"]) as mine:
        assert totals(mine, "24h") == OF_A                 # no domain given: its own
        assert totals(mine, "24h", domain=A) == OF_A
        error_of(mine.get("/stats/traffic", params={"domain": B}), 403)
        error_of(mine.get("/stats/summary", params={"domain": B}), 403)
        s = ok(mine.get("/stats/summary"))
        assert (s["queue_size"], s["delivered"], s["failed"]) == (1, 1, 1)


def test_cli_shows_the_same_numbers(api, admin, mail):
    shown = json.loads(api.cli("stats", "--span", "30d", "--domain", A, "--json").stdout)
    assert shown["traffic"] == traffic(admin, span="30d", domain=A)
    assert shown["summary"] == ok(admin.get("/stats/summary", params={"domain": A}))
    table = api.cli("stats").stdout
    assert "messages per hour" in table and "RECEIVED" in table
    assert re.search(r"total\W+2\W+2\W+2\W+1\W+1\W+1", table), table
    assert "success rate 66.7%" in table and "unknown-user 1" in table
    refused = api.cli("stats", "--domain", "not a domain", check=False)
    assert refused.returncode == 1 and "invalid domain 'not a domain'" in refused.stderr


def test_bad_parameters(api, admin):
    assert "span" in error_of(admin.get("/stats/traffic", params={"span": "1h"}),
                              422)["message"]
    assert "invalid domain" in error_of(
        admin.get("/stats/summary", params={"domain": "not a domain"}), 422)["message"]
    error_of(admin.get("/stats/summary", headers={"Authorization": ""}), 401)
