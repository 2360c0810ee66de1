"""The service parts without a server: config keys, what a reload applies, the JSON log
lines, sd_notify datagrams, the checks made before dropping root."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import platform
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailwright.config import ConfigError, LogSettings, load
from mailwright.net.certs import CertificateError, ServerCertificates
from mailwright.net.notify import Notifier
from mailwright.net.tls import ServerNames, issue_leaf, make_ca
from mailwright.service import logs, privileges
from mailwright.service.reload import ReloadError, load_checked, needs_restart

BASE = """hostname = "mail.example.test"
data_dir = "var"

[[listeners]]
role = "mx"
port = 2525
"""


def _config(tmp_path: Path, extra: str = "", name: str = "m.toml"):
    path = tmp_path / name
    path.write_text(BASE + extra)
    return load(str(path))


def _pair(tmp_path: Path, name: str) -> None:
    (tmp_path / f"{name}.pem").write_text("cert")
    (tmp_path / f"{name}.key").write_text("key")


def test_server_log_and_tls_keys(tmp_path):
    _pair(tmp_path, "a")
    _pair(tmp_path, "b")
    cfg = _config(tmp_path, '[server]\nuser = "mailwright"\nshutdown_grace = 20\n'
                            '[log]\nformat = "json"\n'
                            '[[tls.certificates]]\ncert = "a.pem"\nkey = "a.key"\n'
                            '[[tls.certificates]]\ncert = "b.pem"\nkey = "b.key"\n')
    assert cfg.server.user == "mailwright" and cfg.server.group == ""
    assert cfg.server.shutdown_grace == 20.0 and cfg.log.format == "json"
    # Without cert/key, the first listed is the default.
    assert [Path(p.cert).name for p in cfg.tls.pairs()] == ["a.pem", "b.pem"]
    assert cfg.tls.cert == str(tmp_path / "a.pem")


@pytest.mark.parametrize("extra, message", [
    ('[log]\nformat = "xml"\n', "m.toml:8: log.format: expected text or json"),
    ('[server]\nusr = "x"\n', "server.usr: unknown key"),
    ('[[tls.certificates]]\ncert = "missing.pem"\nkey = "missing.key"\n',
     "tls.certificates[0].cert: file not found"),
    ('[[tls.certificates]]\ncert = "a.pem"\n', "tls.certificates[0]: expected a table with"),
])
def test_bad_service_keys_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _config(tmp_path, extra)


def test_reload_applies_tls_and_log_and_reports_the_rest(tmp_path):
    old = _config(tmp_path)
    same = _config(tmp_path, '[log]\nlevel = "debug"\n')
    assert needs_restart(old, same) == []
    other = _config(tmp_path, '[[listeners]]\nrole = "imap"\nport = 1143\n'
                              '[server]\nshutdown_grace = 1\n')
    assert needs_restart(old, other) == ["listeners", "server"]
    (tmp_path / "m.toml").write_text(BASE + "nonsense\n")
    with pytest.raises(ReloadError, match="invalid TOML"):
        load_checked(str(tmp_path / "m.toml"))
    _pair(tmp_path, "a")
    (tmp_path / "m.toml").write_text(BASE + '[tls]\ncert = "a.pem"\nkey = "a.key"\n')
    with pytest.raises(ReloadError, match="a.pem is not a PEM certificate"):
        load_checked(str(tmp_path / "m.toml"))


def test_json_log_lines(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure(LogSettings(level="info", format="json"))
        logging.getLogger("mailwright.events").info("event=%s ip=%s", "smtp-connect", "::1")
        logging.getLogger("mailwright").debug("not shown at info")
    finally:
        root.handlers[:], root.level = saved
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "info" and entry["logger"] == "mailwright.events"
    assert entry["message"] == "event=smtp-connect ip=::1" and entry["pid"] == os.getpid()
    assert entry["time"].endswith("Z")


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_datagrams(tmp_path, abstract):
    name = f"@mw-test-{os.getpid()}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:] if abstract else name)
        sock.settimeout(5)
        notifier = Notifier(name)
        notifier.ready()
        assert sock.recv(1024).decode() == f"READY=1\nMAINPID={os.getpid()}"
        notifier.reloading()
        fields = dict(f.split("=") for f in sock.recv(1024).decode().split("\n"))
        assert fields["RELOADING"] == "1" and int(fields["MONOTONIC_USEC"]) > 0
        notifier.stopping()
        assert sock.recv(1024) == b"STOPPING=1"
    Notifier(None).ready()                 # not under systemd: nothing, no error


def test_notifier_is_taken_out_of_the_environment(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    assert Notifier.from_environment().address == "/run/systemd/notify"
    assert "NOTIFY_SOCKET" not in os.environ       # workers cannot send in our name


def test_world_readable_key_is_refused_with_the_fix(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("secret")
    key.chmod(0o644)
    with pytest.raises(privileges.PrivilegeError, match=f"fix: chmod 0600 {key}"):
        privileges.check_keys([key], None)
    key.chmod(0o600)
    privileges.check_keys([key], None)
    nobody = privileges.Identity("nobody", 65534, 65534, (65534,))
    if os.geteuid() != 65534:
        with pytest.raises(privileges.PrivilegeError, match="cannot be read by"):
            privileges.check_keys([key], nobody)


def test_missing_data_dir_is_made_private(tmp_path):
    cfg = _config(tmp_path)
    privileges.prepare_data_dir(cfg, None)
    assert cfg.data_dir.stat().st_mode & 0o777 == 0o700


def test_unknown_user_says_how_to_create_it(tmp_path):
    cfg = _config(tmp_path, '[server]\nuser = "no-such-user-here"\n')
    with pytest.raises(privileges.PrivilegeError, match="adduser --system --group"):
        privileges.resolve(cfg)


# --- certificates: SNI and reload, over memory BIOs --------------------------------------

def _write_leaf(ca, directory: Path, name: str, dns: tuple[str, ...]) -> int:
    now = datetime.datetime.now(datetime.UTC)
    cert, key = issue_leaf(ca, ServerNames(dns, (ipaddress.ip_address("127.0.0.1"),), dns[0]),
                           now)
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert.serial_number


def _handshake(server_ctx, server_name: str | None):
    """A TLS handshake between a client and server_ctx in memory: the server's
    certificate serial as the client saw it, and both ends to go on talking."""
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if client.version() and server.version() and not c_out.pending \
                and not s_out.pending:
            break
    serial = x509.load_der_x509_certificate(client.getpeercert(True)).serial_number
    return serial, (client, server, c_in, c_out, s_in, s_out)


def _echo(pair) -> bytes:
    client, server, c_in, c_out, s_in, s_out = pair
    client.write(b"ping")
    s_in.write(c_out.read())
    return server.read(4)


def test_sni_choice_and_reload_in_place(tmp_path):
    ca = make_ca(ServerNames(("mail.example.test", "example.org", "localhost"),
                             (ipaddress.ip_address("127.0.0.1"),), "ca"),
                 datetime.datetime.now(datetime.UTC))
    main = _write_leaf(ca, tmp_path, "main", ("mail.example.test",))
    wild = _write_leaf(ca, tmp_path, "wild", ("*.example.org",))
    pairs = [(tmp_path / "main.pem", tmp_path / "main.key"),
             (tmp_path / "wild.pem", tmp_path / "wild.key")]
    certs = ServerCertificates(pairs)
    assert _handshake(certs.context, "imap.example.org")[0] == wild      # by wildcard
    assert _handshake(certs.context, "a.b.example.org")[0] == main       # one label only
    assert _handshake(certs.context, None)[0] == main
    serial, open_pair = _handshake(certs.context, "mail.example.test")
    assert serial == main

    renewed = _write_leaf(ca, tmp_path, "main", ("mail.example.test",))
    certs.reload(pairs)
    assert _handshake(certs.context, "mail.example.test")[0] == renewed
    assert _echo(open_pair) == b"ping"          # the connection made before goes on
    # A key that is not the certificate's: nothing changes.
    (tmp_path / "main.key").write_bytes((tmp_path / "wild.key").read_bytes())
    with pytest.raises(CertificateError, match="cannot use certificate"):
        certs.reload(pairs)
    assert _handshake(certs.context, None)[0] == renewed
    assert [s.serial for s in certs.served] == [renewed, wild]


# Four argon2 checks at once in the pool, as concurrent logins run them; prints how much
# the process's resident memory grew and kept (MB).
_CONCURRENT_LOGINS = """
import concurrent.futures, sys
from mailwright.auth.passwords import hash_password, verify_password
from mailwright.service import memory
if sys.argv[1] == "fixed":
    assert memory.return_large_allocations()
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
hashed = hash_password("pw")
before = rss()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    for _ in range(3):
        list(pool.map(lambda _: verify_password(hashed, "pw"), range(4)))
    print(rss() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_argon2_memory_goes_back_to_the_system_after_concurrent_logins():
    """Without the fixed mmap threshold each pool thread's arena keeps argon2's 19 MiB
    (service/memory.py); with it, next to nothing is kept."""
    def grown(mode: str) -> float:
        res = subprocess.run([sys.executable, "-c", _CONCURRENT_LOGINS, mode],
                             capture_output=True, text=True, timeout=120, check=True)
        return float(res.stdout)
    assert grown("default") > 15          # at least one 19 MiB kept: what this guards against
    assert grown("fixed") < 10
