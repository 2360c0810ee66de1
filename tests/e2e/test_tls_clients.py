"""Real clients trust the server's own CA (data_dir/tls/ca.pem) with certificate checks on:
mbsync, curl, msmtp and Python's ssl, by IP address, by localhost and by the host name,
over implicit TLS and STARTTLS. No client here is told to skip verification."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ..conftest import PASSWORD, MailServer, require

HOST = "mail.example.test"
USER = "tls@example.test"

# mbsync's Tunnel: the bytes go to 127.0.0.1 while mbsync checks the certificate against its
# Host, so a host name is verified without any resolver.
# When mbsync goes (its socket may end in a reset), the relay ends too.
RELAY = """import os, socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def up():
    try:
        while data := os.read(0, 65536):
            s.sendall(data)
    except OSError:
        pass
    s.shutdown(socket.SHUT_RDWR)
threading.Thread(target=up, daemon=True).start()
try:
    while data := s.recv(65536):
        os.write(1, data)
except OSError:
    pass
"""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    srv = MailServer(tmp_path_factory.mktemp("tls"), hostname=HOST)
    srv.cli("domain", "add", "example.test")
    srv.add_user(USER)
    srv.start()
    for i in range(3):
        deliver(srv, f"message {i}")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ca(tls_server) -> Path:
    return tls_server.data_dir / "tls" / "ca.pem"


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Path:
    """A CA that issued nothing the server presents."""
    from mailwright.net.tls import local_certificate
    return local_certificate(tmp_path_factory.mktemp("other"), HOST, ["127.0.0.1"]).ca


def deliver(srv, subject: str) -> None:
    msg = (f"From: x@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@remote.test>\r\n\r\nbody\r\n").encode()
    with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=30) as s:
        s.sendmail("x@remote.test", [USER], msg)


def verifying(cafile: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


def test_the_banner_names_the_ca_file(tls_server, ca):
    banner = tls_server.log.read_text()
    assert f"CertificateFile {ca}" in banner
    assert f"curl --cacert {ca}" in banner
    assert "self-signed" not in banner


# --- Python ssl -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", HOST])
def test_python_ssl_verifies_implicit_tls(tls_server, ca, name):
    # connect to 127.0.0.1 and check the certificate against `name`: no resolver involved
    for role, greeting in (("submissions", b"220 "), ("imaps", b"* OK"), ("pop3s", b"+OK")):
        with socket.create_connection(("127.0.0.1", tls_server.ports[role]), 10) as raw:
            with verifying(ca).wrap_socket(raw, server_hostname=name) as s:
                assert s.recv(200).startswith(greeting)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", HOST])
def test_python_ssl_verifies_starttls(tls_server, ca, name):
    ports = tls_server.ports
    with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=30) as smtp:
        smtp._host = name          # what starttls() checks the certificate against
        assert smtp.starttls(context=verifying(ca))[0] == 220
        smtp.login(USER, PASSWORD)
    imap = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=30)
    imap.host = name
    imap.starttls(verifying(ca))
    imap.login(USER, PASSWORD)
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=30)
    pop.host = name
    pop.stls(verifying(ca))
    pop.user(USER)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] >= 3
    pop.quit()


def test_python_ssl_refuses_without_the_ca_and_for_another_name(tls_server, ca, other_ca):
    port = tls_server.ports["imaps"]
    for ctx, name in ((ssl.create_default_context(), HOST), (verifying(other_ca), HOST),
                      (verifying(ca), "other.example.test"), (verifying(ca), "127.0.0.2")):
        with socket.create_connection(("127.0.0.1", port), 10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname=name)


# --- curl -------------------------------------------------------------------------------------
def curl(*args: str) -> subprocess.CompletedProcess:
    require("curl")
    return subprocess.run(["curl", "-sS", "--user", f"{USER}:{PASSWORD}", *args],
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", HOST])
def test_curl_cacert(tls_server, ca, name):
    ports = tls_server.ports
    # --resolve pins the name to 127.0.0.1: curl checks the certificate against `name`
    urls = [f"imaps://{name}:{ports['imaps']}/INBOX;UID=1",
            f"imap://{name}:{ports['imap']}/INBOX;UID=1",            # STARTTLS
            f"pop3s://{name}:{ports['pop3s']}/1",
            f"pop3://{name}:{ports['pop3']}/1"]                      # STLS
    for url in urls:
        port = url.split(":")[2].split("/")[0]
        res = curl("--cacert", str(ca), "--ssl-reqd", "--resolve", f"{name}:{port}:127.0.0.1",
                   url)
        assert res.returncode == 0, (url, res.stderr)
        assert b"Subject: message " in res.stdout


def test_curl_smtp_cacert(tls_server, ca, tmp_path):
    msg = tmp_path / "msg.eml"
    msg.write_bytes(f"From: {USER}\r\nTo: {USER}\r\nSubject: by curl\r\n\r\nhi\r\n".encode())
    for url in (f"smtps://{HOST}:{tls_server.ports['submissions']}",
                f"smtp://{HOST}:{tls_server.ports['submission']}"):
        port = url.rsplit(":", 1)[1]
        res = curl("--cacert", str(ca), "--ssl-reqd", "--resolve", f"{HOST}:{port}:127.0.0.1",
                   "--mail-from", USER, "--mail-rcpt", USER, "-T", str(msg), url)
        assert res.returncode == 0, (url, res.stderr)


def test_curl_refuses_another_ca(tls_server, other_ca):
    res = curl("--cacert", str(other_ca), f"imaps://127.0.0.1:{tls_server.ports['imaps']}/")
    assert res.returncode == 60, res.stderr          # CURLE_PEER_FAILED_VERIFICATION


# --- msmtp (GnuTLS) ---------------------------------------------------------------------------
def test_msmtp_trust_file(tls_server, ca):
    require("msmtp")
    msg = f"From: {USER}\r\nTo: {USER}\r\nSubject: by msmtp\r\n\r\nhi\r\n".encode()
    for role, starttls in (("submission", "on"), ("submissions", "off")):
        res = subprocess.run(
            ["msmtp", "--host=127.0.0.1", f"--port={tls_server.ports[role]}", "--tls=on",
             f"--tls-starttls={starttls}", f"--tls-trust-file={ca}", "--auth=plain",
             f"--user={USER}", f"--passwordeval=echo '{PASSWORD}'", f"--from={USER}", USER],
            input=msg, capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr.decode()


# --- mbsync -----------------------------------------------------------------------------------
def mbsync(srv, tmp: Path, cafile: Path, host: str, role: str) -> subprocess.CompletedProcess:
    require("mbsync")
    port = srv.ports[role]
    if host == "127.0.0.1":
        connect = f"Host 127.0.0.1\nPort {port}\n"
    else:
        relay = tmp / "relay.py"
        relay.write_text(RELAY)
        connect = f'Host {host}\nTunnel "{sys.executable} {relay} {port}"\n'
    maildir = tmp / "Mail"
    maildir.mkdir(exist_ok=True)
    rc = tmp / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount test\n{connect}User {USER}\nPass \"{PASSWORD}\"\n"
        f"SSLType {'IMAPS' if role == 'imaps' else 'STARTTLS'}\nCertificateFile {cafile}\n\n"
        "IMAPStore remote\nAccount test\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\n"
        "SyncState *\nSync Pull\n")
    return subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", HOST])
@pytest.mark.parametrize("role", ["imaps", "imap"])
def test_mbsync_trusts_the_ca_file(tls_server, ca, tmp_path, host, role):
    res = mbsync(tls_server, tmp_path, ca, host, role)
    assert res.returncode == 0, res.stderr + res.stdout
    got = list((tmp_path / "Mail" / "INBOX" / "new").iterdir()) + \
        list((tmp_path / "Mail" / "INBOX" / "cur").iterdir())
    assert sum(b"Subject: message " in f.read_bytes() for f in got) == 3


@pytest.mark.parametrize("role", ["imaps", "imap"])
def test_mbsync_refuses_another_ca_and_another_name(tls_server, other_ca, ca, tmp_path, role):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    res = mbsync(tls_server, tmp_path / "a", other_ca, "127.0.0.1", role)
    assert res.returncode != 0 and "SSL error" in res.stderr, res.stderr
    res = mbsync(tls_server, tmp_path / "b", ca, "other.example.test", role)
    assert res.returncode != 0
    assert "certificate owner does not match hostname other.example.test" in res.stderr
