"""POP3 with real clients: fetchmail, mpop, curl and poplib against a live server."""

from __future__ import annotations

import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest

from ..conftest import PASSWORD, MailServer, require

INSECURE = ssl._create_unverified_context()


@pytest.fixture(scope="module")
def pop_server(tmp_path_factory):
    srv = MailServer(tmp_path_factory.mktemp("pop"))
    srv.cli("domain", "add", "example.test")
    for user in ("fetch@example.test", "mpop@example.test", "curl@example.test",
                 "lib@example.test", "lock@example.test"):
        srv.add_user(user)
    srv.start()
    yield srv
    srv.stop()


def send(srv, rcpt: str, count: int, size: int = 0) -> list[bytes]:
    """Deliver `count` messages (some with leading dots, 8-bit, long); return them."""
    sent = []
    with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=30) as s:
        for i in range(count):
            body = (f"From: x@remote.test\r\nTo: {rcpt}\r\nSubject: {uuid.uuid4().hex}\r\n"
                    f"\r\n.leading dot {i}\r\nÄ 8-bit\r\n").encode() \
                + (b"z" * 70 + b"\r\n") * (size // 72) \
                + b".\r\n".join([b"line"] * (size // 100)) + b"\r\nend\r\n"
            s.sendmail("x@remote.test", [rcpt], body)
            sent.append(body)
    return sent


def stored(srv, user: str) -> list[bytes]:
    return srv.inbox(user)


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def test_poplib_stls_and_995_byte_exact(pop_server):
    send(pop_server, "lib@example.test", 3, size=20000)
    expected = stored(pop_server, "lib@example.test")
    p = poplib.POP3("127.0.0.1", pop_server.ports["pop3"], timeout=30)
    p.stls(INSECURE)
    p.user("lib@example.test")
    p.pass_(PASSWORD)
    for n, want in enumerate(expected, 1):
        _, lines, octets = p.retr(n)
        # poplib splits lines and undoes dot-stuffing: rejoin and compare.
        assert b"\r\n".join(lines) + b"\r\n" == want
        assert octets >= len(want)
    p.quit()
    s = poplib.POP3_SSL("127.0.0.1", pop_server.ports["pop3s"], context=INSECURE, timeout=30)
    s.user("lib@example.test")
    s.pass_(PASSWORD)
    assert s.stat() == (len(expected), sum(map(len, expected)))
    s.dele(1)
    s.quit()
    assert stored(pop_server, "lib@example.test") == expected[1:]


def _fetchmail(srv, tmp: Path, user: str, *, implicit_tls: bool, keep: bool) -> Path:
    require("fetchmail")
    out = tmp / f"fetched-{uuid.uuid4().hex}"
    out.mkdir()
    rc = tmp / "fetchmailrc"
    port = srv.ports["pop3s" if implicit_tls else "pop3"]
    tls = "ssl" if implicit_tls else "sslproto 'tls1.2+'"
    rc.write_text(
        f"set no bouncemail\nset idfile \"{tmp / 'fetchids'}\"\n"
        f"poll 127.0.0.1 service {port} protocol pop3 uidl\n"
        f"  user \"{user}\" password \"{PASSWORD}\" {tls} no sslcertck\n"
        f"  {'keep' if keep else 'nokeep'} fetchall\n"
        f"  mda \"/bin/sh -c 'cat > {out}/$(date +%s%N)'\"\n")
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp))
    res = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--invisible"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode in (0, 1), res.stderr      # 1: no new mail
    return out


def test_fetchmail_stls_keep_then_only_new(pop_server, tmp_path):
    user = "fetch@example.test"
    send(pop_server, user, 5, size=3000)
    expected = stored(pop_server, user)
    # First run, leaving mail on the server: everything arrives.
    rc = tmp_path / "fetchmailrc"
    got = _fetchmail(pop_server, tmp_path, user, implicit_tls=False, keep=True)
    files = sorted(got.iterdir())
    assert sorted(lf(f.read_bytes()) for f in files) == sorted(lf(m) for m in expected)
    # Second run: fetchall would fetch again, so use the UIDL-based default.
    rc.write_text(rc.read_text().replace(" fetchall", ""))
    send(pop_server, user, 2)
    new = set(stored(pop_server, user)) - set(expected)
    text = rc.read_text()
    got2 = tmp_path / "second"
    got2.mkdir()
    rc.write_text(text.replace(str(got), str(got2)))
    rc.chmod(0o600)
    res = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--invisible"],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, HOME=str(tmp_path)))
    assert res.returncode == 0, res.stderr
    assert sorted(lf(f.read_bytes()) for f in got2.iterdir()) == sorted(lf(m) for m in new)


def test_fetchmail_995_downloads_and_deletes(pop_server, tmp_path):
    user = "fetch@example.test"
    expected = stored(pop_server, user)
    got = _fetchmail(pop_server, tmp_path, user, implicit_tls=True, keep=False)
    assert sorted(lf(f.read_bytes()) for f in got.iterdir()) == sorted(lf(m) for m in expected)
    assert stored(pop_server, user) == []


def _mpop(srv, tmp: Path, user: str, port_role: str, *extra: str) -> subprocess.CompletedProcess:
    require("mpop")
    maildir = tmp / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    starttls = "on" if port_role == "pop3" else "off"
    return subprocess.run(
        ["mpop", "--host=127.0.0.1", f"--port={srv.ports[port_role]}", "--tls=on",
         f"--tls-starttls={starttls}", "--tls-certcheck=off", f"--user={user}",
         f"--passwordeval=echo '{PASSWORD}'", "--auth=scram-sha-256",
         "--received-header=off", f"--deliver=maildir,{maildir}",
         f"--uidls-file={tmp / 'uidls'}", *extra],
        capture_output=True, text=True, timeout=120)


def test_mpop_keep_mode_downloads_only_new(pop_server, tmp_path):
    user = "mpop@example.test"
    send(pop_server, user, 4, size=5000)
    first = stored(pop_server, user)
    res = _mpop(pop_server, tmp_path, user, "pop3", "--keep=on")
    assert res.returncode == 0, res.stderr + res.stdout
    got = [f.read_bytes() for f in (tmp_path / "Maildir" / "new").iterdir()]
    assert sorted(map(lf, got)) == sorted(map(lf, first))
    send(pop_server, user, 1)
    res = _mpop(pop_server, tmp_path, user, "pop3s", "--keep=on")
    assert res.returncode == 0, res.stderr + res.stdout
    got = [f.read_bytes() for f in (tmp_path / "Maildir" / "new").iterdir()]
    assert len(got) == len(first) + 1                  # only the new one came
    assert len(stored(pop_server, user)) == len(first) + 1


def test_curl_pop3_and_pop3s(pop_server):
    require("curl")
    user = "curl@example.test"
    [msg] = send(pop_server, user, 1)
    [want] = stored(pop_server, user)
    for url in (f"pop3://127.0.0.1:{pop_server.ports['pop3']}/1",
                f"pop3s://127.0.0.1:{pop_server.ports['pop3s']}/1"):
        res = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "-u", f"{user}:{PASSWORD}",
                              url], capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout == want
    res = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "-u", f"{user}:{PASSWORD}",
                          f"pop3://127.0.0.1:{pop_server.ports['pop3']}/"],
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == f"1 {len(want)}"


def test_killed_session_deletes_nothing_and_in_use(pop_server):
    user = "lock@example.test"
    send(pop_server, user, 3)
    before = stored(pop_server, user)
    p = poplib.POP3_SSL("127.0.0.1", pop_server.ports["pop3s"], context=INSECURE, timeout=30)
    p.user(user)
    p.pass_(PASSWORD)
    p.dele(1)
    p.dele(2)
    # A second session for the same maildrop is refused while the first holds it.
    q = poplib.POP3_SSL("127.0.0.1", pop_server.ports["pop3s"], context=INSECURE, timeout=30)
    q.user(user)
    with pytest.raises(poplib.error_proto, match=r"IN-USE"):
        q.pass_(PASSWORD)
    q.close()
    # Kill the first connection without QUIT.
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    p.close()
    assert stored(pop_server, user) == before
    # The lock went with the connection.
    for _ in range(50):
        r = poplib.POP3_SSL("127.0.0.1", pop_server.ports["pop3s"], context=INSECURE,
                            timeout=30)
        r.user(user)
        try:
            r.pass_(PASSWORD)
            break
        except poplib.error_proto:
            r.close()
    assert r.stat()[0] == 3
    r.quit()
