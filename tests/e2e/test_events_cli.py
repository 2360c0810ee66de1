"""`mailwright events` against a real server: mail accepted over SMTP is found by
search, exported as JSON Lines and CSV that parse back, and prune removes exactly the
rows past their domain's retention; the server's own pruner does the same unasked."""

from __future__ import annotations

import csv
import json
import re
import smtplib
import ssl
import subprocess
import sys
import time

import pytest

from mailwright.events.log import EventRow

from ..conftest import PASSWORD, MailServer

DAY = 86400.0
EVENTS = """
[events]
retention_days = 30
prune_interval = {interval}
[events.domains."keep.test"]
retention_days = "unlimited"
[events.domains."short.test"]
retention_days = 2
"""
AGES = (1, 3, 31, 400)                        # days
DOMAINS = ("keep.test", "short.test", "other.test", None)


def expired(domain: str | None, age: int) -> bool:
    days = {"keep.test": None, "short.test": 2}.get(domain, 30)
    return days is not None and age > days


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch):
    # rich lays tables out for $COLUMNS when not on a terminal: room for whole rows.
    monkeypatch.setenv("COLUMNS", "400")


def start(tmp_path, interval: float) -> MailServer:
    srv = MailServer(tmp_path, extra=EVENTS.format(interval=interval))
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    srv.add_user("bob@example.test")
    return srv.start()


def send(srv: MailServer, role: str, mail_from: str, rcpt: str, login: bool = False) -> str:
    """One message; its queue id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", srv.ports[role], local_hostname="client.example.net",
                      timeout=30) as s:
        if login:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            s.starttls(context=ctx)
            s.login(mail_from, PASSWORD)
        s.ehlo_or_helo_if_needed()
        assert s.mail(mail_from)[0] == 250 and s.rcpt(rcpt)[0] == 250
        code, reply = s.data(f"Subject: events\r\n\r\nhello {rcpt}\r\n".encode())
        assert code == 250, reply
    return re.search(r"queued as (\S+)", reply.decode())[1]


def search(srv: MailServer, *args: str) -> str:
    return srv.cli("events", "search", *args).stdout


def shown(listing: str) -> int:
    return int(re.search(r"(\d+) event\(s\), newest first", listing)[1])


def export(srv: MailServer, *args: str) -> list[dict]:
    return [json.loads(line) for line in srv.cli("events", "export", *args).stdout.splitlines()]


def old_rows(srv: MailServer) -> None:
    """Rows of every domain at every age, written as the server writes them."""
    store = srv.store()
    try:
        now = time.time()
        for domain in DOMAINS:
            for age in AGES:
                data = {"rcpt": f"u@{domain}"} if domain else {"ip": "127.0.0.1"}
                store.record_event(EventRow.of(now - age * DAY, "delivered", None,
                                               f"OLD-{domain}-{age}", data))
    finally:
        store.close()                          # waits for the rows to be written


def test_search_export_and_prune(tmp_path):
    srv = start(tmp_path, interval=3600)       # its own pruner runs once, at start
    try:
        inbound = [send(srv, "mx", "sender@remote.test", "alice@example.test")
                   for _ in range(3)]
        outbound = send(srv, "submission", "alice@example.test", "bob@example.test",
                        login=True)
        # Rows are written with the writer's next batch, just after the 250.
        deadline = time.monotonic() + 15
        while shown(listing := search(srv, "--address", "Sender@remote.test",
                                      "--type", "accepted")) < 3:
            assert time.monotonic() < deadline, listing
            time.sleep(0.1)
        assert shown(listing) == 3 and all(mid in listing for mid in inbound)
        assert outbound in search(srv, "--message-id", outbound, "--type", "accepted")

        # Pages: four accepted messages for example.test, two at a time.
        first = search(srv, "--domain", "EXAMPLE.test", "--type", "accepted", "--limit", "2")
        cursor = re.search(r"--cursor (\S+)", first)[1]
        second = search(srv, "--domain", "example.test", "--type", "accepted", "--limit", "2",
                        "--cursor", cursor)
        assert shown(first) == shown(second) == 2 and "--cursor" not in second
        assert all((first + second).count(mid) == 1 for mid in inbound + [outbound])

        # Exports parse back: JSON Lines on stdout, CSV to a file.
        rows = export(srv, "--address", "sender@remote.test", "--type", "accepted")
        assert sorted(r["message_id"] for r in rows) == sorted(inbound)
        assert all(r["data"]["mail_from"] == "sender@remote.test" and r["domain"] ==
                   "example.test" for r in rows)
        out = tmp_path / "events.csv"
        srv.cli("events", "export", "--format", "csv", "--output", str(out),
                "--address", "sender@remote.test", "--type", "accepted")
        with open(out, newline="", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
        assert [(int(r["id"]), r["message_id"], json.loads(r["data"])) for r in table] == [
            (r["id"], r["message_id"], r["data"]) for r in rows]

        # Refusals name the problem; no traceback.
        for args, message in ((["--since", "yesterday"], "invalid since 'yesterday'"),
                              (["--type", "bogus"], "known types: accepted, auth-checks"),
                              (["--limit", "0"], "invalid limit 0"),
                              (["--cursor", "xyz"], "invalid cursor")):
            res = srv.cli("events", "search", *args, check=False)
            assert res.returncode == 1 and message in res.stderr, res.stderr
            assert "Traceback" not in res.stderr

        # Prune: exactly the rows past their domain's retention.
        before = {r["id"] for r in export(srv)}
        old_rows(srv)
        gone = sum(expired(d, a) for d in DOMAINS for a in AGES)
        assert gone == 7
        assert srv.cli("events", "prune").stdout.startswith(
            f"deleted {gone} event(s) past their retention and 0 finished message(s)")
        left = export(srv)
        assert {r["message_id"] for r in left if (r["message_id"] or "").startswith("OLD-")} \
            == {f"OLD-{d}-{a}" for d in DOMAINS for a in AGES if not expired(d, a)}
        assert before <= {r["id"] for r in left}            # the recent rows all stay
        assert srv.cli("events", "prune").stdout.startswith("deleted 0 event(s)")
    finally:
        srv.stop()


def test_the_server_prunes_by_itself(tmp_path):
    srv = start(tmp_path, interval=0.2)
    try:
        old_rows(srv)
        # The rows may reach the table in more than one commit, so in more than one run.
        deadline = time.monotonic() + 15
        while sum(r["data"]["events"] for r in export(srv, "--type", "events-pruned")) < 7:
            assert time.monotonic() < deadline, "the server never pruned"
            time.sleep(0.1)
        time.sleep(0.5)                                      # two more runs: nothing more
        pruned = export(srv, "--type", "events-pruned")
        assert sum(r["data"]["events"] for r in pruned) == 7
        assert all(r["data"]["messages"] == 0 for r in pruned)
        assert len(export(srv, "--type", "delivered")) == 16 - 7
    finally:
        srv.stop()


def test_an_export_read_by_head_ends_quietly(tmp_path):
    # `mailwright events export | head`: the reader closes the pipe long before the
    # export ends (more rows than a pipe buffer holds); no traceback, exit as SIGPIPE.
    srv = MailServer(tmp_path)
    store = srv.store()
    try:
        now = time.time()
        for i in range(3000):
            store.record_event(EventRow.of(now - i, "delivered", None, f"M{i}",
                                           {"rcpt": f"user{i}@example.test"}))
    finally:
        store.close()
    proc = subprocess.Popen([sys.executable, "-m", "mailwright", "--config", str(srv.config),
                             "events", "export"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert json.loads(proc.stdout.readline())["type"] == "delivered"
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert err == b"" and proc.returncode == 141
