"""Crash safety: kill -9 the server mid-load; every acknowledged message survives."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import smtplib
import threading
import time

from mailwright.address import parse_mailbox

from ..conftest import MailServer


def test_kill_9_loses_no_acknowledged_message(tmp_path):
    srv = MailServer(tmp_path)
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    srv.start()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        try:
            with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=10) as s:
                while not stop.is_set() and i < 2000:      # bounded
                    token = f"crash-{n}-{i}"
                    body = f"Subject: {token}\r\n\r\n" + ("payload line\r\n" * 200)
                    s.sendmail("load@remote.test", ["alice@example.test"], body)
                    with lock:
                        acked.append(token)
                    i += 1
        except (smtplib.SMTPException, OSError):
            pass      # the server died under us: expected

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.02)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    stop.set()
    for t in threads:
        t.join(30)
    srv.stop()
    assert len(acked) >= 150

    store = srv.store()          # reopening also clears temporary files left by the crash
    try:
        rows = store.mailbox_messages(parse_mailbox("alice@example.test"))
        subjects = {}
        for row in rows:
            data = asyncio.run(store.read_blob(row["blob"]))
            # Nothing half-written: every visible message is whole and matches its name.
            assert hashlib.sha256(data).hexdigest() == row["blob"]
            assert data.endswith(b"payload line\r\n" * 200)
            subject = data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
            subjects[subject] = subjects.get(subject, 0) + 1
        missing = [t for t in acked if t not in subjects]
        assert not missing, f"{len(missing)} acknowledged messages lost: {missing[:5]}"
        assert not list((srv.data_dir / "blobs" / "tmp").iterdir())
        uids = [r["uid"] for r in rows]
        assert uids == sorted(set(uids))
    finally:
        store.close()
