"""ACME against Debian's pebble on loopback: HTTP-01 really validated (pebble fetches
the answer from our http listener), the issued certificate served by the TLS listeners,
renewal inside the renewal window, and a CA that cannot be reached."""

from __future__ import annotations

import datetime
import json
import signal
import socket
import sqlite3
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailwright.certificates.files import AcmeFiles

from ..conftest import free_port, loopback_dns
from .apiserver import ApiServer
from .pebble import Pebble

HOST, OTHER = "mail.pebble.test", "imap.pebble.test"
ZONE = """$TTL 300
@    IN SOA ns.pebble.test. hostmaster.pebble.test. 1 3600 600 86400 300
@    IN NS  ns.pebble.test.
mail IN A   127.0.0.1
imap IN A   127.0.0.1
"""


@pytest.fixture(autouse=True, scope="module")
def names():
    # A zone of its own: loose records (add_records) would make a root zone, which
    # answers NXDOMAIN where other tests rely on the server refusing unknown names.
    loopback_dns().add_zone("pebble.test", ZONE)


def acme_server(tmp_path, directory_url: str | None = None, top: str = ""):
    srv = ApiServer(tmp_path, hostname=HOST, top=top)
    pebble = Pebble(tmp_path, srv.ports["http"])
    srv.config.write_text(
        srv.config.read_text()
        + "\n[acme]\nenabled = true\n"
        + f'directory = "{directory_url or pebble.directory_url}"\n'
        + f'email = "postmaster@{HOST}"\nnames = ["{OTHER}"]\n'
        + f'ca_file = "{pebble.tls_ca}"\ncheck_interval = 0.5\n')
    return srv, pebble


def served(srv, role: str = "imaps") -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE          # read what is served; verified separately
    with socket.create_connection(("127.0.0.1", srv.ports[role]), 5) as raw, \
            ctx.wrap_socket(raw, server_hostname=HOST) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def events(srv, kind: str) -> list[dict]:
    """The events of a kind so far; none while the server has not made its store yet
    (it binds the listeners first). Read-only: never creates the database itself."""
    try:
        with sqlite3.connect(f"file:{srv.data_dir / 'mail.db'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT data FROM events WHERE type = ? ORDER BY id",
                              (kind,)).fetchall()
    except sqlite3.OperationalError:        # no file or no table yet
        return []
    return [json.loads(data) for (data,) in rows]


def wait_for(predicate, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def due_certificate(files: AcmeFiles) -> x509.Certificate:
    """A certificate 5/6 through its life (past the 2/3 renewal point) in data_dir/acme,
    as if issued weeks ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old test certificate")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=50))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(HOST), x509.DNSName(OTHER)]), critical=False)
            .sign(key, hashes.SHA256()))
    files.write(cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert


def test_issues_serves_and_renews_on_demand(tmp_path):
    srv, pebble = acme_server(tmp_path)
    pebble.start()
    try:
        srv.start()
        files = AcmeFiles.of(srv.data_dir)
        issued = wait_for(lambda: events(srv, "certificate-issued"), "certificate-issued")
        assert issued[0]["reason"] == "missing"
        assert set(issued[0]["names"].split()) == {HOST, OTHER}
        cert = files.read()
        assert format(cert.serial_number, "x") == issued[0]["serial"]
        # Every TLS listener serves it once loaded, and it verifies against pebble's root
        # for both names.
        for role in ("imaps", "submissions", "pop3s", "https"):
            wait_for(lambda r=role: served(srv, r).serial_number == cert.serial_number,
                     f"{role} serving the ACME certificate", 10)
        trust = ssl.create_default_context(cadata=pebble.root())
        for name in (HOST, OTHER):
            with socket.create_connection(("127.0.0.1", srv.ports["imaps"]), 5) as raw, \
                    trust.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert oct(files.key.stat().st_mode & 0o777) == "0o600"
        assert oct(files.account_key.stat().st_mode & 0o777) == "0o600"
        assert not list(files.challenges.iterdir())       # answers withdrawn after use

        status = srv.cli("cert", "status").stdout
        assert "Pebble Intermediate" in status and "days left" in status, status

        # `mailwright cert renew` from another process: the running server answers the
        # CA's HTTP-01 request and loads the new certificate.
        out = srv.cli("cert", "renew").stdout
        assert "issued by Pebble Intermediate" in out, out
        renewed = files.read()
        assert renewed.serial_number != cert.serial_number
        wait_for(lambda: served(srv).serial_number == renewed.serial_number,
                 "the renewed certificate served", 10)
        assert [e["reason"] for e in events(srv, "certificate-issued")] == ["missing", "forced"]
        # A reload (SIGHUP) re-reads the config and keeps serving the ACME certificate.
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in srv.log.read_text(), "the reload", 10)
        assert served(srv).serial_number == renewed.serial_number
    finally:
        srv.stop()
        pebble.stop()


def test_every_worker_serves_the_new_certificate(tmp_path):
    # The primary issues; the other worker notices the replaced files (check_interval).
    srv, pebble = acme_server(tmp_path, top="workers = 2")
    pebble.start()
    try:
        srv.start()
        wait_for(lambda: events(srv, "certificate-issued"), "certificate-issued")
        serial = AcmeFiles.of(srv.data_dir).read().serial_number
        # The kernel spreads connections over both workers: 20 in a row all see it.
        wait_for(lambda: all(served(srv).serial_number == serial for _ in range(20)),
                 "both workers serving the ACME certificate", 15)
    finally:
        srv.stop()
        pebble.stop()


def test_renews_inside_the_renewal_window(tmp_path):
    srv, pebble = acme_server(tmp_path)
    files = AcmeFiles.of(srv.data_dir)
    files.directory.parent.mkdir(parents=True)
    old = due_certificate(files)
    pebble.start()
    try:
        srv.start()
        issued = wait_for(lambda: events(srv, "certificate-issued"), "certificate-issued")
        assert issued[0]["reason"] == "renewal"
        new = files.read()
        assert new.serial_number != old.serial_number
        assert new.not_valid_after_utc > old.not_valid_after_utc
        wait_for(lambda: served(srv).serial_number == new.serial_number,
                 "the renewed certificate served", 10)
        # Not due any more: the next checks leave it alone.
        time.sleep(1.5)
        assert len(events(srv, "certificate-issued")) == 1
    finally:
        srv.stop()
        pebble.stop()


def test_failing_ca_keeps_the_certificate(tmp_path):
    nobody = f"https://127.0.0.1:{free_port()}/dir"      # nothing listens there
    srv, _ = acme_server(tmp_path, directory_url=nobody)
    files = AcmeFiles.of(srv.data_dir)
    files.directory.parent.mkdir(parents=True)
    old = due_certificate(files)
    srv.start()
    try:
        failed = wait_for(lambda: events(srv, "certificate-renewal-failed"),
                          "certificate-renewal-failed")
        assert failed[0]["reason"] == "renewal"
        assert failed[0]["directory"] == nobody
        assert "reading the directory" in failed[0]["error"]
        assert failed[0]["kept_until"] == old.not_valid_after_utc.isoformat()
        assert files.read().serial_number == old.serial_number
        assert served(srv).serial_number == old.serial_number
        assert not events(srv, "certificate-issued")
        res = srv.cli("cert", "renew", check=False)
        assert res.returncode == 1 and "the CA did not issue" in res.stderr, res.stderr
    finally:
        srv.stop()
