"""What several worker processes share, and how (workers.py): each mail listener has
a socket per worker that the kernel spreads connections over (SO_REUSEPORT), HTTP one
socket for the primary; SQLite's writers take turns on one flock (store/sqlite/db.py
WriteLock); only the primary's store builds the full-text index."""

from __future__ import annotations

import fcntl
import os
import socket
import time

import pytest

from mailwright.app import ListenError, bind_listeners, open_store
from mailwright.config import parse
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.sqlite import SQLiteStore
from mailwright.store.sqlite.textindex import Indexer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path, mx: int, http: int):
    return parse(f"""
hostname = "mx.example.test"
data_dir = "{tmp_path}"
[[listeners]]
role = "mx"
address = "127.0.0.1"
port = {mx}
[[listeners]]
role = "http"
address = "127.0.0.1"
port = {http}
""")


def test_each_worker_has_its_own_mail_sockets_and_the_primary_the_http_one(tmp_path):
    mx, http = free_port(), free_port()
    per_worker = bind_listeners(config(tmp_path, mx, http), workers=3)
    try:
        assert len(per_worker) == 3
        mail = [dict((lst.role, s) for lst, s in bound)["mx"] for bound in per_worker]
        web = [dict((lst.role, s) for lst, s in bound)["http"] for bound in per_worker]
        assert len({id(s) for s in mail}) == 3
        assert {s.getsockname()[1] for s in mail} == {mx}
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in mail)
        assert len({id(s) for s in web}) == 1
        # Connections reach every worker's socket (a hash of the client's port picks).
        clients = [socket.create_connection(("127.0.0.1", mx)) for _ in range(30)]
        try:
            time.sleep(0.2)
            taken = []
            for s in mail:
                s.setblocking(False)
                n = 0
                while True:
                    try:
                        conn, _ = s.accept()
                    except BlockingIOError:
                        break
                    conn.close()
                    n += 1
                taken.append(n)
            assert sum(taken) == 30 and min(taken) > 0, taken
        finally:
            for c in clients:
                c.close()
    finally:
        for bound in per_worker:
            for _, s in bound:
                s.close()


def test_a_port_another_server_listens_on_is_refused_even_with_reuseport(tmp_path):
    mx, http = free_port(), free_port()
    other = bind_listeners(config(tmp_path, mx, http), workers=2)
    try:
        # Without the probe, SO_REUSEPORT would let a second server of the same user
        # join the first one's sockets and take half of its connections.
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{mx}"):
            bind_listeners(config(tmp_path, mx, free_port()), workers=2)
    finally:
        for bound in other:
            for _, s in bound:
                s.close()


def test_a_write_waits_for_the_write_lock(tmp_path):
    store = SQLiteStore(tmp_path, fetch_views)
    fd = os.open(tmp_path / "mail.db-writelock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)          # as another process's writer would
        done = store._writer.submit(
            lambda c: c.execute("INSERT INTO meta (key, value) VALUES ('t', '1')"))
        time.sleep(0.3)
        assert not done.done()
        fcntl.flock(fd, fcntl.LOCK_UN)
        done.result(timeout=10)
        assert store.conn.execute("SELECT value FROM meta WHERE key='t'").fetchone() == ("1",)
    finally:
        os.close(fd)
        store.close()


def test_only_the_store_of_the_primary_indexes(tmp_path):
    cfg = config(tmp_path, free_port(), free_port())
    for indexer in (False, True):
        store = open_store(cfg, indexer=indexer)
        try:
            assert isinstance(store._writer.background, Indexer) is indexer
        finally:
            store.close()
