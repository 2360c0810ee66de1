"""Metrics: events counted by the EventLog observer, gauges read at scrape time, the
exposition parsed back with prometheus_client's own parser, and the sum over forked
processes (multiprocess mode) in a subprocess of its own."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import textwrap
import timeit

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from mailwright.events.log import EventLog
from mailwright.events.types import Event
from mailwright.imap.fetch import views as fetch_views
from mailwright.metrics import Metrics, gauge_by, queue_recipients, render, webhook_backlog
from mailwright.metrics.observer import LABEL_VALUES_MAX
from mailwright.queue import states
from mailwright.store.messages import Delivery
from mailwright.store.queue import RemoteRecipient
from mailwright.store.sqlite import SQLiteStore

from .conftest import PASSWORD
from .session_harness import Harness


def scrape(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition: (sample name, labels) -> value."""
    body, content_type = asyncio.run(render(metrics))
    assert content_type.startswith("text/plain; version=0.0.4")
    return samples(body.decode())


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(got: dict, name: str, **labels) -> float:
    return got[(name, frozenset(labels.items()))]


@pytest.fixture
def counted():
    """A Metrics instance of its own (its own registry) and an EventLog feeding it."""
    metrics = Metrics()
    assert metrics.registry is not None        # not in multiprocess mode in this process
    return metrics, EventLog(None, observers=[metrics.observe])


# --- counted from events -----------------------------------------------------------------
def test_connections_by_listener_and_open_sessions(counted):
    metrics, log = counted
    for role in ("mx", "mx", "submission"):
        log.emit(Event.SMTP_CONNECT, "S", ip="192.0.2.1", role=role, tls="")
    log.emit(Event.SMTP_DISCONNECT, "S", ip="192.0.2.1", accepted=0, errors=0)
    # IMAP and POP3: the role follows from TLS at the greeting (imaps / pop3s).
    log.emit(Event.IMAP_CONNECT, "I1", ip="192.0.2.1", tls="TLSv1.3")
    log.emit(Event.IMAP_CONNECT, "I2", ip="192.0.2.1", tls="")
    log.emit(Event.IMAP_CONNECT, "I3", ip="192.0.2.1", tls="")
    log.emit(Event.IMAP_DISCONNECT, "I2", ip="192.0.2.1", account="")
    log.emit(Event.POP3_CONNECT, "P1", ip="192.0.2.1", tls="TLSv1.3")
    log.emit(Event.POP3_DISCONNECT, "P1", ip="192.0.2.1", account="a@example.test")
    log.emit(Event.REFUSED, ip="192.0.2.9", role="imaps", reason="Too many connections")
    got = scrape(metrics)
    assert value(got, "mailwright_connections_total", role="mx") == 2
    assert value(got, "mailwright_connections_total", role="submission") == 1
    assert value(got, "mailwright_connections_total", role="imaps") == 1
    assert value(got, "mailwright_connections_total", role="imap") == 2
    assert value(got, "mailwright_connections_total", role="pop3s") == 1
    assert ("mailwright_connections_total", frozenset({("role", "pop3")})) not in got
    assert value(got, "mailwright_connections_refused_total", role="imaps") == 1
    assert value(got, "mailwright_open_sessions", protocol="smtp") == 2
    assert value(got, "mailwright_open_sessions", protocol="imap") == 2
    assert value(got, "mailwright_open_sessions", protocol="pop3") == 0


def test_known_series_are_there_at_zero_from_the_start(counted):
    got = scrape(counted[0])
    for result in ("delivered", "deferred", "bounced"):
        assert value(got, "mailwright_deliveries_total", result=result) == 0
    for protocol in ("smtp", "imap", "pop3"):
        assert value(got, "mailwright_open_sessions", protocol=protocol) == 0
        assert value(got, "mailwright_auth_failures_total", protocol=protocol) == 0
        assert value(got, "mailwright_auth_locked_total", protocol=protocol) == 0
    assert value(got, "mailwright_delivery_delay_seconds_count", result="bounced") == 0


def test_deliveries_by_result_and_the_delay_histogram(counted):
    metrics, log = counted
    common = dict(remote="mx.remote.test [192.0.2.5]", tls="", reply="250 ok")
    log.emit(Event.DELIVERED, None, "M1", rcpt="a@remote.test", attempt=1, delay=0.3, **common)
    log.emit(Event.DELIVERED, None, "M2", rcpt="b@remote.test", attempt=2, delay=400.0,
             **common)
    log.emit(Event.DEFERRED, None, "M3", rcpt="c@remote.test", attempt=1, delay=1.0, **common)
    log.emit(Event.BOUNCED, None, "M4", rcpt="d@remote.test", attempt=9, delay=432001.0,
             **common)
    log.emit(Event.BOUNCED, None, "M5", rcpt="e@remote.test", attempt=1, **common)  # no delay
    got = scrape(metrics)
    assert value(got, "mailwright_deliveries_total", result="delivered") == 2
    assert value(got, "mailwright_deliveries_total", result="deferred") == 1
    assert value(got, "mailwright_deliveries_total", result="bounced") == 2
    h = "mailwright_delivery_delay_seconds"
    assert value(got, f"{h}_count", result="delivered") == 2
    assert value(got, f"{h}_sum", result="delivered") == pytest.approx(400.3)
    assert value(got, f"{h}_bucket", result="delivered", le="0.5") == 1
    assert value(got, f"{h}_bucket", result="delivered", le="300.0") == 1
    assert value(got, f"{h}_bucket", result="delivered", le="900.0") == 2
    # A bounce after max_age is past the last finite bucket; one without delay is not timed.
    assert value(got, f"{h}_count", result="bounced") == 1
    assert value(got, f"{h}_bucket", result="bounced", le="432000.0") == 0
    assert value(got, f"{h}_bucket", result="bounced", le="+Inf") == 1
    # Deferrals are not final: they are counted, not timed.
    assert not any(name.startswith(h) and ("result", "deferred") in labels
                   for name, labels in got)


def test_rejections_by_reason_and_auth_failures_by_protocol(counted):
    metrics, log = counted
    for reason in ("unknown-user", "unknown-user", "relay-denied", "spf,dmarc"):
        log.emit(Event.REJECTED, "S", ip="192.0.2.1", code=550, reason=reason)
    log.emit(Event.AUTH_FAIL, "S", ip="192.0.2.1", protocol="imap", mechanism="PLAIN",
             username="x")
    log.emit(Event.AUTH_FAIL, "S", ip="192.0.2.1", protocol="imap", mechanism="LOGIN",
             username="y")
    log.emit(Event.AUTH_LOCKED, "S", ip="192.0.2.1", protocol="pop3", seconds=30)
    got = scrape(metrics)
    assert value(got, "mailwright_messages_rejected_total", reason="unknown-user") == 2
    assert value(got, "mailwright_messages_rejected_total", reason="relay-denied") == 1
    assert value(got, "mailwright_messages_rejected_total", reason="spf,dmarc") == 1
    assert value(got, "mailwright_auth_failures_total", protocol="imap") == 2
    assert value(got, "mailwright_auth_failures_total", protocol="smtp") == 0
    assert value(got, "mailwright_auth_locked_total", protocol="pop3") == 1


def test_no_label_carries_an_address_ip_or_id(counted):
    metrics, log = counted
    log.emit(Event.REJECTED, "SESSION9", "MSGID9", ip="203.0.113.77", code=550,
             reason="unknown-user", rcpt="secret@example.test", mail_from="who@x.test")
    log.emit(Event.AUTH_FAIL, "SESSION9", ip="203.0.113.77", protocol="smtp",
             mechanism="XYZZY", username="secret@example.test")
    body = asyncio.run(render(metrics))[0].decode()
    for private in ("203.0.113.77", "secret@", "who@", "SESSION9", "MSGID9", "XYZZY"):
        assert private not in body


def test_an_unbounded_label_is_capped(counted):
    metrics, log = counted
    for n in range(LABEL_VALUES_MAX + 30):
        log.emit(Event.REJECTED, "S", code=550, reason=f"reason-{n}")
    got = scrape(metrics)
    reasons = {dict(labels)["reason"]: v for (name, labels), v in got.items()
               if name == "mailwright_messages_rejected_total"}
    assert len(reasons) == LABEL_VALUES_MAX + 1
    assert reasons["other"] == 30
    assert sum(reasons.values()) == LABEL_VALUES_MAX + 30


def test_events_that_count_nothing_change_nothing(counted):
    metrics, log = counted
    before = scrape(metrics)
    log.emit(Event.IMAP_SELECT, "I", account="a@example.test", mailbox="INBOX")
    log.emit(Event.STARTTLS, "I", version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256")
    assert scrape(metrics) == before


def test_a_real_smtp_session_is_counted(store, counted):
    """The events a session really emits (role, size, reasons) feed the metrics."""
    metrics, log = counted
    h = Harness(store, events=log)
    h.ehlo()
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<nobody@example.test>\r\n"
           "RCPT TO:<alice@example.test>\r\nDATA\r\n")
    message = b"Subject: m\r\n\r\n" + b"x" * 5000 + b"\r\n.\r\n"
    assert h.send(message)[0].startswith("250")
    h.session.disconnected()
    sub = Harness(store, role="submission", tls=True, events=log)
    sub.ehlo()
    wrong = base64.b64encode(b"\0alice@example.test\0not-" + PASSWORD.encode()).decode()
    assert sub.cmd(f"AUTH PLAIN {wrong}").startswith("535")
    got = scrape(metrics)
    assert value(got, "mailwright_connections_total", role="mx") == 1
    assert value(got, "mailwright_connections_total", role="submission") == 1
    assert value(got, "mailwright_open_sessions", protocol="smtp") == 1
    assert value(got, "mailwright_messages_accepted_total", role="mx") == 1
    assert value(got, "mailwright_messages_rejected_total", reason="unknown-user") == 1
    assert value(got, "mailwright_auth_failures_total", protocol="smtp") == 1
    size = "mailwright_accepted_message_size_bytes"
    assert value(got, f"{size}_count") == 1
    # 5000 octets of text plus the trace fields the pipeline added: over 4 KiB, under 16.
    assert value(got, f"{size}_bucket", le="4096.0") == 0
    assert value(got, f"{size}_bucket", le="16384.0") == 1
    assert 5000 < value(got, f"{size}_sum") < 16384


def test_accepted_without_a_role_is_counted_as_unknown(counted):
    metrics, log = counted
    log.emit(Event.ACCEPTED, "S", "M", ip="127.0.0.1", size=100, mail_from="", rcpts=1,
             local=1, remote=0, account="", tls="")
    assert value(scrape(metrics), "mailwright_messages_accepted_total", role="unknown") == 1


def test_a_failing_observer_never_fails_the_step(caplog):
    class Recorder:
        rows: list = []

        def record_event(self, row):
            self.rows.append(row.type)

    def broken(event, session, message_id, data):
        raise KeyError("bug")

    metrics = Metrics()
    log = EventLog(Recorder(), observers=[broken, metrics.observe])
    with caplog.at_level(logging.ERROR, logger="mailwright.events"):
        log.emit(Event.SMTP_CONNECT, "S", ip="192.0.2.1", role="mx", tls="")
    assert Recorder.rows == ["smtp-connect"]                   # recorded all the same
    assert value(scrape(metrics), "mailwright_connections_total", role="mx") == 1
    assert "event observer" in caplog.text and "smtp-connect" in caplog.text


# --- read at scrape time -----------------------------------------------------------------
def test_queue_depth_by_state_read_from_the_store(tmp_path):
    store = SQLiteStore(tmp_path, render_views=fetch_views)
    try:
        metrics = Metrics()
        metrics.collectors.add("queue", queue_recipients(store.queue_depth, states.ALL))
        got = scrape(metrics)
        assert {dict(labels)["state"]: v for (name, labels), v in got.items()
                if name == "mailwright_queue_recipients"} == dict.fromkeys(states.ALL, 0)
        for n, rcpts in enumerate((["a@r.test", "b@r.test"], ["c@s.test"])):
            asyncio.run(store.deliver(Delivery(
                message_id=f"Q{n}", mail_from="x@example.test",
                remote=[RemoteRecipient(r) for r in rcpts], relay_content=b"S: x\r\n\r\nx\r\n")))
        asyncio.run(store.queue_set_state("Q1", states.HELD, 0.0))
        assert asyncio.run(store.queue_depth()) == {"pending": 2, "held": 1}
        got = scrape(metrics)
        assert value(got, "mailwright_queue_recipients", state="pending") == 2
        assert value(got, "mailwright_queue_recipients", state="held") == 1
        assert value(got, "mailwright_queue_recipients", state="deferred") == 0
    finally:
        store.close()


def test_a_failing_collector_is_left_out_and_the_rest_served(counted, caplog):
    metrics, log = counted

    async def unreadable():
        raise RuntimeError("database is locked")

    async def backlog():
        return {"pending": 7}

    metrics.collectors.add("webhooks", webhook_backlog(backlog, ("pending", "failed")))
    metrics.collectors.add("broken", gauge_by("mailwright_broken", "x", "k", unreadable))
    log.emit(Event.SMTP_CONNECT, "S", ip="192.0.2.1", role="mx", tls="")
    with caplog.at_level(logging.WARNING, logger="mailwright.metrics"):
        got = scrape(metrics)
    assert value(got, "mailwright_webhook_backlog", state="pending") == 7
    assert value(got, "mailwright_webhook_backlog", state="failed") == 0
    assert value(got, "mailwright_connections_total", role="mx") == 1
    assert not any(name == "mailwright_broken" for name, _ in got)
    assert "metrics collector broken failed: database is locked" in caplog.text


def test_a_collector_returning_its_own_families(counted):
    metrics, _ = counted

    async def families():
        return [GaugeMetricFamily("mailwright_custom", "a gauge", value=3)]

    metrics.collectors.add("custom", families)
    assert value(scrape(metrics), "mailwright_custom") == 3
    with pytest.raises(ValueError, match="'custom' is already registered"):
        metrics.collectors.add("custom", families)


def test_openmetrics_when_the_scraper_asks_for_it(counted):
    metrics, log = counted
    log.emit(Event.SMTP_CONNECT, "S", ip="192.0.2.1", role="mx", tls="")
    body, content_type = asyncio.run(render(
        metrics, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"))
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    [family] = [f for f in openmetrics_families(text) if f.name == "mailwright_connections"]
    assert family.type == "counter"
    assert [(s.labels, s.value) for s in family.samples if s.name.endswith("_total")] == \
        [({"role": "mx"}, 1.0)]


# --- several processes -------------------------------------------------------------------
# Run in a process of its own: multiprocess mode is per process (prepare() switches
# prometheus_client's value class), and this test process stays in single-process mode.
MULTIPROCESS = textwrap.dedent("""
    import asyncio, json, os, sys
    from pathlib import Path
    from mailwright.events.log import EventLog
    from mailwright.events.types import Event
    from mailwright.metrics import Metrics, prepare, process_exited, render

    def connect(log, n, role):
        for _ in range(n):
            log.emit(Event.SMTP_CONNECT, "S", ip="192.0.2.1", role=role, tls="")

    directory = prepare(Path(sys.argv[1]))
    # A worker that counts, leaves 2 sessions open and exits.
    pid = os.fork()
    if pid == 0:
        log = EventLog(None, [Metrics().observe])
        connect(log, 3, "mx")
        log.emit(Event.DELIVERED, None, "M", rcpt="a@r.test", remote="r", tls="",
                 reply="250", attempt=1, delay=2.0)
        os._exit(0)
    os.waitpid(pid, 0)
    process_exited(pid)
    # A worker that counts, leaves 1 session open and stays alive during the scrape.
    read, write = os.pipe()
    hold, release = os.pipe()
    alive = os.fork()
    if alive == 0:
        os.close(read)
        os.close(release)
        log = EventLog(None, [Metrics().observe])
        connect(log, 1, "mx")
        connect(log, 4, "submission")
        for _ in range(4):
            log.emit(Event.SMTP_DISCONNECT, "S", ip="192.0.2.1", accepted=1, errors=0)
        os.write(write, b"counted")
        os.read(hold, 1)                        # until the parent has scraped
        os._exit(0)
    os.close(write)
    os.close(hold)
    assert os.read(read, 7) == b"counted"
    # The serving process counts its own events too.
    metrics = Metrics()
    assert metrics.registry is None and metrics.directory == str(directory)
    EventLog(None, [metrics.observe]).emit(Event.DELIVERED, None, "M", rcpt="b@r.test",
        remote="r", tls="", reply="250", attempt=1, delay=4.0)
    # A worker caught starting: its value file exists, still empty.
    open(os.path.join(directory, "counter_999999.db"), "wb").close()
    body, content_type = asyncio.run(render(metrics))
    os.close(release)
    os.waitpid(alive, 0)
    print(json.dumps({"body": body.decode(), "files": sorted(os.listdir(directory))}))
""")


def run_processes(data_dir) -> tuple[dict, list[str]]:
    res = subprocess.run([sys.executable, "-c", MULTIPROCESS, str(data_dir)],
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items()
                              if k != "PROMETHEUS_MULTIPROC_DIR"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    return samples(out["body"]), out["files"]


def test_forked_processes_are_summed_in_one_scrape(tmp_path):
    got, files = run_processes(tmp_path)
    # Counters: the exited worker's, the live worker's and the server's own, summed.
    assert value(got, "mailwright_connections_total", role="mx") == 4
    assert value(got, "mailwright_connections_total", role="submission") == 4
    assert value(got, "mailwright_deliveries_total", result="delivered") == 2
    assert value(got, "mailwright_delivery_delay_seconds_sum", result="delivered") == 6.0
    assert value(got, "mailwright_delivery_delay_seconds_bucket", result="delivered",
                 le="2.5") == 1
    # Open sessions: only the live worker's (5 opened, 4 closed); the exited worker's
    # 3 died with it.
    assert value(got, "mailwright_open_sessions", protocol="smtp") == 1
    assert any(f.startswith("gauge_livesum_") for f in files)
    # Nothing of the single-process kind (_created series) in multiprocess output.
    assert not any(name.endswith("_created") for name, _ in got)


def test_each_start_counts_from_zero(tmp_path):
    first, _ = run_processes(tmp_path)
    # The first run's files (of processes long gone) would double every counter.
    again, _ = run_processes(tmp_path)
    assert value(again, "mailwright_connections_total", role="mx") == 4
    assert again == first


# --- cost --------------------------------------------------------------------------------
def test_observer_cost_per_emit(counted, capsys):
    """Not a benchmark, a guard: the observer must stay far below the cost of a step
    (an SMTP command is tens of microseconds). The figures are printed with -s."""
    metrics, log = counted
    plain = EventLog(None)
    fields = dict(ip="192.0.2.1", role="mx", tls="")
    n = 20000
    with_observer = min(timeit.repeat(lambda: log.emit(Event.SMTP_CONNECT, "S", **fields),
                                      number=n, repeat=3)) / n
    without = min(timeit.repeat(lambda: plain.emit(Event.SMTP_CONNECT, "S", **fields),
                                number=n, repeat=3)) / n
    ignored = min(timeit.repeat(lambda: metrics.observe(Event.IMAP_SELECT, "S", None, {}),
                                number=n, repeat=3)) / n
    with capsys.disabled():
        print(f"\nemit: {without * 1e6:.2f} us; with the metrics observer "
              f"{with_observer * 1e6:.2f} us; an event that counts nothing "
              f"{ignored * 1e6:.2f} us")
    assert with_observer - without < 20e-6
