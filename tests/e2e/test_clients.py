"""Real SMTP clients (swaks, curl, msmtp, smtplib) against a live server on loopback."""

from __future__ import annotations

import asyncio
import email
import smtplib
import socket
import ssl
import subprocess
import uuid

import pytest

from ..conftest import PASSWORD, require


def run(cmd: list[str], input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=input, capture_output=True, timeout=60)


def swaks(server, port_role: str, *args: str) -> subprocess.CompletedProcess:
    require("swaks")
    return run(["swaks", "--server", f"127.0.0.1:{server.ports[port_role]}",
                "--helo", "client.example.net", *args])


def marker() -> str:
    return uuid.uuid4().hex


def delivered(server, user: str, token: str) -> list[bytes]:
    return [m for m in server.inbox(user) if token.encode() in m]


def test_swaks_mx_plain(server):
    token = marker()
    res = swaks(server, "mx", "--to", "alice@example.test", "--from", "x@remote.test",
                "--header", f"Subject: {token}")
    assert res.returncode == 0, res.stdout.decode()
    assert b"250 2.0.0 OK: queued as" in res.stdout
    [msg] = delivered(server, "alice@example.test", token)
    assert msg.startswith(b"Return-Path: <x@remote.test>\r\nReceived: from client.example.net")


def test_swaks_mx_pipelining(server):
    token = marker()
    res = swaks(server, "mx", "--pipeline", "--to", "bob@example.test,team@example.test",
                "--header", f"Subject: {token}")
    assert res.returncode == 0, res.stdout.decode()
    assert len(delivered(server, "bob@example.test", token)) == 1     # one copy, not two
    assert len(delivered(server, "alice@example.test", token)) == 1


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_submission_starttls_auth(server, mech):
    token = marker()
    res = swaks(server, "submission", "--tls", "--auth", mech,
                "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                "--from", "alice@example.test", "--to", "bob@example.test",
                "--header", f"Subject: {token}")
    assert res.returncode == 0, res.stdout.decode()
    [msg] = delivered(server, "bob@example.test", token)
    assert b"with ESMTPSA id" in msg
    assert b"(using TLSv1.3 with cipher" in msg


def test_swaks_implicit_tls_465(server):
    token = marker()
    res = swaks(server, "submissions", "--tlsc", "--auth", "PLAIN",
                "--auth-user", "carol@example.test", "--auth-password", PASSWORD,
                "--from", "carol@example.test", "--to", "alice@example.test",
                "--header", f"Subject: {token}")
    assert res.returncode == 0, res.stdout.decode()
    assert delivered(server, "alice@example.test", token)


def test_swaks_bad_password_and_no_tls(server):
    res = swaks(server, "submission", "--tls", "--auth", "PLAIN",
                "--auth-user", "alice@example.test", "--auth-password", "wrong-password",
                "--to", "bob@example.test")
    assert res.returncode != 0 and b"535 5.7.8" in res.stdout
    res = swaks(server, "submission", "--from", "alice@example.test", "--to", "bob@example.test")
    assert res.returncode != 0 and b"530 5.7.0" in res.stdout


def test_curl_smtp_ssl_reqd(server, tmp_path):
    require("curl")
    token = marker()
    msg = tmp_path / "msg.eml"
    msg.write_bytes(f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: {token}\r\n"
                    f"\r\nsent by curl\r\n".encode())
    ca = str(server.data_dir / "tls" / "ca.pem")          # the server's own CA, checks on
    res = run(["curl", "-sS", "--ssl-reqd", "--cacert", ca,
               f"smtp://127.0.0.1:{server.ports['submission']}",
               "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
               "-u", f"alice@example.test:{PASSWORD}", "-T", str(msg)])
    assert res.returncode == 0, res.stderr.decode()
    assert delivered(server, "bob@example.test", token)
    res = run(["curl", "-sS", "--cacert", ca, f"smtps://127.0.0.1:{server.ports['submissions']}",
               "--mail-from", "alice@example.test", "--mail-rcpt", "carol@example.test",
               "-u", f"alice@example.test:{PASSWORD}", "-T", str(msg)])
    assert res.returncode == 0, res.stderr.decode()
    assert delivered(server, "carol@example.test", token)


@pytest.mark.parametrize("auth", ["plain", "login", "scram-sha-256"])
def test_msmtp(server, auth):
    require("msmtp")
    token = marker()
    msg = f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {token}\r\n\r\nhi\r\n"
    res = run(["msmtp", "--host=127.0.0.1", f"--port={server.ports['submission']}",
               "--tls=on", "--tls-starttls=on",
               f"--tls-trust-file={server.data_dir / 'tls' / 'ca.pem'}", f"--auth={auth}",
               "--user=bob@example.test", f"--passwordeval=echo '{PASSWORD}'",
               "--from=bob@example.test", "alice@example.test"], input=msg.encode())
    assert res.returncode == 0, res.stderr.decode()
    assert delivered(server, "alice@example.test", token)


def _smtp(server, role="mx") -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.ports[role], local_hostname="client.example.net",
                        timeout=30)


def test_smtplib_8bit_and_utf8_byte_exact(server):
    token = marker()
    body = (f"From: Jörg <jörg@bücher.test>\r\nTo: Dörte <Dörte@bücher.test>\r\n"
            f"Subject: Grüße {token}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\nÄpfel, Öl, Übermut — ½ €\r\n"
            f".leading dot line\r\n").encode()
    with _smtp(server) as s:
        s.ehlo()
        assert s.has_extn("smtputf8")
        s.sendmail("jörg@bücher.test", ["dörte@bücher.test"], body,
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [msg] = delivered(server, "Dörte@bücher.test", token)
    assert msg.endswith(body)
    # Latin-1 bytes (8-bit, not UTF-8) are stored untouched too.
    raw = b"Subject: latin " + token.encode() + b"\r\n\r\ncaf\xe9\r\n"
    with _smtp(server) as s:
        s.sendmail("a@remote.test", ["alice@example.test"], raw, mail_options=["BODY=8BITMIME"])
    [msg] = delivered(server, "alice@example.test", "latin " + token)
    assert msg.endswith(raw)


def test_smtplib_starttls_and_scram_absent_login(server):
    token = marker()
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with _smtp(server, "submission") as s:
        s.starttls(context=ctx)
        s.login("alice@example.test", PASSWORD)
        refused = s.sendmail("alice@example.test", ["bob@example.test"],
                             f"Subject: {token}\r\n\r\nx\r\n")
        assert refused == {}
    assert delivered(server, "bob@example.test", token)


@pytest.mark.parametrize("rcpt, code", [
    ("victim@remote.test", b"550 5.7.1"),
    ("victim%remote.test@example.test", b"550 5.1.1"),
    ("@example.test:victim@remote.test", b"550 5.7.1"),
    ('"victim@remote.test"@example.test', b"550 5.1.1"),
    ("remote.test!victim@example.test", b"550 5.1.1"),
    ("victim@[127.0.0.1]", b"550 5.7.1"),
])
def test_open_relay_forms_rejected_over_the_wire(server, rcpt, code):
    with socket.create_connection(("127.0.0.1", server.ports["mx"]), 10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        f.write(b"EHLO relay-tester.example.net\r\nMAIL FROM:<spam@remote.test>\r\n"
                + f"RCPT TO:<{rcpt}>\r\nDATA\r\nQUIT\r\n".encode())
        f.flush()
        lines = [f.readline() for _ in range(14)]
    rcpt_reply = next(line for line in lines
                      if line.startswith(b"5") and b"5.5.1" not in line)
    assert rcpt_reply.startswith(code), lines
    assert any(line.startswith(b"554 5.5.1") for line in lines)          # DATA refused
    store = server.store()
    try:
        assert not [q for q in store.queued() if "victim" in q["address"]]
    finally:
        store.close()


def test_swaks_relay_as_authenticated_user_is_queued(server):
    token = marker()
    res = swaks(server, "submissions", "--tlsc", "--auth", "PLAIN",
                "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                "--from", "alice@example.test", "--to", "friend@remote.test",
                "--header", f"Subject: {token}")
    assert res.returncode == 0, res.stdout.decode()
    store = server.store()
    try:
        [q] = [q for q in store.queued() if q["address"] == "friend@remote.test"
               and token.encode() in asyncio.run(store.read_blob(q["blob"]))]
        # The queue runner may already have tried (remote.test is not in the test DNS).
        assert q["mail_from"] == "alice@example.test"
        assert q["state"] in ("pending", "deferred")
        msg = email.message_from_bytes(asyncio.run(store.read_blob(q["blob"])))
        assert msg["Subject"] == token
    finally:
        store.close()


def test_connection_limit_per_ip(tmp_path):
    from ..conftest import MailServer
    srv = MailServer(tmp_path, extra="[limits]\nmax_connections_per_ip = 2\n").start()
    try:
        socks = [socket.create_connection(("127.0.0.1", srv.ports["mx"]), 5) for _ in range(3)]
        banners = [s.recv(200) for s in socks]
        assert banners[0].startswith(b"220") and banners[1].startswith(b"220")
        assert banners[2].startswith(b"421 4.7.0")
        for s in socks:
            s.close()
    finally:
        srv.stop()
