"""Metrics over several worker processes, read as the process serving /metrics reads
them: the files every worker of a real `mailwright serve` writes in data_dir/metrics,
summed by prometheus_client. (/metrics itself is the HTTP API's test.)"""

from __future__ import annotations

import contextlib
import imaplib
import os
import signal
import smtplib
import subprocess
import time

from mailwright.metrics.exposition import WorkerFiles
from mailwright.workers import RESPAWN_MIN_UPTIME

from ..conftest import MailServer
from ..unit.test_metrics import value


def read(data_dir) -> dict:
    collector = WorkerFiles(None, path=str(data_dir / "metrics"))
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in collector.collect() for s in family.samples}


def until(condition, what: str, seconds: float = 20.0):
    """condition() once true. A series not there yet counts as not yet: a worker just
    forked has not written its gauges, and a dead one's were removed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(KeyError):
            if got := condition():
                return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def workers(srv: MailServer) -> set[str]:
    return set(subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True,
                              text=True).stdout.split())


def test_workers_count_into_one_sum_that_survives_a_dead_worker(tmp_path):
    srv = MailServer(tmp_path)
    srv.config.write_text("workers = 2\n" + srv.config.read_text())
    srv.cli("domain", "add", "example.test")
    srv.add_user("w@example.test")
    srv.start()
    try:
        first = until(lambda: len(workers(srv)) == 2 and workers(srv), "two workers")
        forked = time.monotonic()
        for n in range(6):
            with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=30) as s:
                if n == 0:
                    s.sendmail("a@remote.test", ["w@example.test"], "Subject: m\r\n\r\nx\r\n")
        imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=30)
        got = until(lambda: (m := read(srv.data_dir)) and value(
            m, "mailwright_open_sessions", protocol="smtp") == 0 and value(
            m, "mailwright_open_sessions", protocol="imap") == 1 and m, "the sessions")
        assert value(got, "mailwright_connections_total", role="mx") == 6
        assert value(got, "mailwright_connections_total", role="imap") == 1
        assert value(got, "mailwright_messages_accepted_total", role="mx") == 1

        # Kill every worker (the supervisor restarts one that lived past
        # RESPAWN_MIN_UPTIME): the open IMAP session dies with its process and leaves
        # the gauge; the counts stay in the sum.
        time.sleep(max(0.0, forked + RESPAWN_MIN_UPTIME + 0.5 - time.monotonic()))
        for pid in first:
            os.kill(int(pid), signal.SIGKILL)
        until(lambda: len(workers(srv)) == 2 and not workers(srv) & first,
              "two new workers")
        got = until(lambda: (m := read(srv.data_dir)) and value(
            m, "mailwright_open_sessions", protocol="imap") == 0 and m,
            "the dead worker's sessions to go")
        assert value(got, "mailwright_connections_total", role="mx") == 6
        assert value(got, "mailwright_messages_accepted_total", role="mx") == 1
        with contextlib.suppress(OSError):
            imap.shutdown()
        # The new workers count on from there.
        with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=30):
            pass
        assert value(read(srv.data_dir), "mailwright_connections_total", role="mx") == 7
    finally:
        srv.stop()
