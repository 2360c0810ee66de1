"""The command line as an admin uses it, and server start-up failures."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from ..conftest import PASSWORD, MailServer


def test_domain_user_alias_lifecycle(tmp_path):
    srv = MailServer(tmp_path)
    assert "added domain example.test" in srv.cli("domain", "add", "Example.TEST").stdout
    assert srv.cli("domain", "add", "example.test", check=False).returncode == 1
    srv.cli("domain", "add", "bücher.test")
    assert srv.cli("domain", "list").stdout.splitlines() == [
        "example.test", "bücher.test (xn--bcher-kva.test)"]

    srv.add_user("Alice@example.test")
    res = srv.cli("user", "add", "bob@nowhere.test", "--password-stdin",
                  input=PASSWORD + "\n", check=False)
    assert res.returncode == 1 and "no such domain: nowhere.test" in res.stderr
    res = srv.cli("user", "add", "bob@example.test", "--password-stdin", input="short\n",
                  check=False)
    assert res.returncode == 1 and "password too short" in res.stderr
    # Without a terminal the password is never taken from argv or guessed.
    res = srv.cli("user", "add", "bob@example.test", input="", check=False)
    assert res.returncode == 1 and "--password-stdin" in res.stderr
    res = srv.cli("user", "add", "not-an-address", "--password-stdin", input=PASSWORD + "\n",
                  check=False)
    assert res.returncode == 1 and "invalid address" in res.stderr
    listing = srv.cli("user", "list").stdout
    assert "Alice@example.test" in listing          # local part preserved

    srv.cli("alias", "add", "sales@example.test", "alice@example.test", "x@remote.test")
    srv.cli("alias", "add", "@example.test", "alice@example.test")
    assert srv.cli("alias", "list").stdout.splitlines() == [
        "@example.test -> alice@example.test",
        "sales@example.test -> alice@example.test, x@remote.test"]
    res = srv.cli("alias", "add", "alice@example.test", "x@remote.test", check=False)
    assert res.returncode == 1 and "is an account" in res.stderr

    res = srv.cli("domain", "remove", "example.test", check=False)
    assert res.returncode == 1 and "--force" in res.stderr
    srv.cli("user", "passwd", "alice@example.test", "--password-stdin", input="another-pass\n")
    srv.cli("user", "remove", "alice@EXAMPLE.test")
    srv.cli("alias", "remove", "sales@example.test")
    srv.cli("domain", "remove", "example.test", "--force")
    assert srv.cli("domain", "list").stdout.splitlines() == ["bücher.test (xn--bcher-kva.test)"]


def test_config_errors_are_reported_not_raised(tmp_path):
    srv = MailServer(tmp_path)
    srv.config.write_text(srv.config.read_text() + "\n[limits]\nmax_recipeints = 5\n")
    res = srv.cli("serve", check=False)
    assert res.returncode == 2
    assert "limits.max_recipeints: unknown key" in res.stderr
    assert "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, "-m", "mailwright", "domain", "list"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 2 and "--config FILE or set MAILWRIGHT_CONFIG" in res.stderr


def test_busy_port_stops_start_cleanly(tmp_path):
    srv = MailServer(tmp_path)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", srv.ports["submission"]))
    blocker.listen()
    try:
        res = srv.cli("serve", check=False)
        assert res.returncode == 1
        assert f"cannot listen on 127.0.0.1:{srv.ports['submission']} (submission)" in res.stderr
        assert "Traceback" not in res.stderr
    finally:
        blocker.close()


def test_idle_timeout_closes_with_421(tmp_path):
    srv = MailServer(tmp_path, extra="[limits]\ncommand_timeout = 1.0\n").start()
    try:
        with socket.create_connection(("127.0.0.1", srv.ports["mx"]), 10) as s:
            f = s.makefile("rb")
            assert f.readline().startswith(b"220")
            start = time.monotonic()
            assert f.readline() == b"421 4.4.2 Timeout exceeded, closing connection\r\n"
            assert f.readline() == b""
            assert time.monotonic() - start < 5
    finally:
        srv.stop()


def test_configured_certificate_is_served(tmp_path):
    import ssl

    from mailwright.net.tls import local_certificate
    own = local_certificate(tmp_path / "own", "mx.company.test", ["127.0.0.1"])
    srv = MailServer(tmp_path, extra=f'[tls]\ncert = "{own.cert}"\nkey = "{own.key}"\n')
    srv.start()
    try:
        ctx = ssl.create_default_context(cafile=str(own.ca))
        ctx.check_hostname = True
        with socket.create_connection(("127.0.0.1", srv.ports["submissions"]), 10) as raw:
            with ctx.wrap_socket(raw, server_hostname="mx.company.test") as s:
                assert s.recv(100).startswith(b"220 mail.example.test")
                assert s.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        srv.stop()


def test_sigterm_tells_sessions_and_exits(tmp_path):
    srv = MailServer(tmp_path).start()
    with socket.create_connection(("127.0.0.1", srv.ports["mx"]), 10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        srv.proc.terminate()
        assert f.readline() == b"421 4.3.2 Service shutting down, try again later\r\n"
        assert srv.proc.wait(15) == 0
    srv.stop()


def test_several_worker_processes(tmp_path):
    import poplib
    import smtplib
    import ssl
    import threading

    srv = MailServer(tmp_path)
    srv.config.write_text("workers = 3\n" + srv.config.read_text())
    srv.cli("domain", "add", "example.test")
    srv.add_user("w@example.test")
    srv.start()
    try:
        def send(n: int) -> None:
            with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=30) as s:
                for i in range(20):
                    s.sendmail("a@remote.test", ["w@example.test"],
                               f"Subject: w{n}-{i}\r\n\r\nx\r\n")
        threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(srv.inbox("w@example.test")) == 160
        # One process (the primary) indexes every worker's texts once deliveries pause
        # (store/sqlite/textindex.py).
        import sqlite3
        with sqlite3.connect(srv.data_dir / "mail.db") as db:
            deadline = time.monotonic() + 20
            while db.execute("SELECT count(*) FROM message_text_pending").fetchone()[0]:
                assert time.monotonic() < deadline, "the text index did not catch up"
                time.sleep(0.05)
            assert db.execute("SELECT count(*) FROM message_text "
                              "WHERE message_text MATCH 'sub'").fetchone()[0] == 160
        # The maildrop lock holds across processes: open many sessions, one wins.
        ctx = ssl._create_unverified_context()
        sessions, refused = [], 0
        for _ in range(6):
            p = poplib.POP3_SSL("127.0.0.1", srv.ports["pop3s"], context=ctx, timeout=30)
            p.user("w@example.test")
            try:
                p.pass_(PASSWORD)
                sessions.append(p)
            except poplib.error_proto as e:
                assert b"[IN-USE]" in e.args[0]
                refused += 1
                p.close()
        assert len(sessions) == 1 and refused == 5
        sessions[0].quit()
        workers = subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 3
        srv.proc.terminate()
        assert srv.proc.wait(20) == 0
        time.sleep(0.5)
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or \
                "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    finally:
        srv.stop()


def test_queue_commands(tmp_path):
    import asyncio

    from mailwright.store.messages import Delivery
    from mailwright.store.queue import RemoteRecipient
    srv = MailServer(tmp_path)
    srv.cli("domain", "add", "example.test")
    store = srv.store()
    try:
        asyncio.run(store.deliver(Delivery(
            message_id="QTEST1", mail_from="a@example.test",
            remote=[RemoteRecipient("x@far.test"), RemoteRecipient("y@near.test")],
            relay_content=b"Subject: q\r\n\r\nx\r\n")))
    finally:
        store.close()
    listing = srv.cli("queue", "list").stdout
    assert "QTEST1" in listing and "x@far.test (pending)" in listing
    assert "by destination:" in listing
    assert "x@far.test" in srv.cli("queue", "show", "QTEST1").stdout
    raw = subprocess.run([sys.executable, "-m", "mailwright", "--config", str(srv.config),
                          "queue", "raw", "QTEST1"], capture_output=True, timeout=60)
    assert raw.stdout == b"Subject: q\r\n\r\nx\r\n"           # the octets, as queued
    assert "2 recipient(s) held" in srv.cli("queue", "hold", "QTEST1").stdout
    assert "(held)" in srv.cli("queue", "list").stdout
    assert "2 recipient(s) released" in srv.cli("queue", "release", "--all").stdout
    assert "due now" in srv.cli("queue", "flush").stdout
    res = srv.cli("queue", "retry", check=False)
    assert res.returncode == 1 and "needs a message ID or --all" in res.stderr
    res = srv.cli("queue", "show", "NOPE", check=False)
    assert res.returncode == 1 and "no queued message NOPE" in res.stderr
    assert "deleted QTEST1" in srv.cli("queue", "delete", "QTEST1").stdout
    assert "0 queued message(s)" in srv.cli("queue", "list").stdout
