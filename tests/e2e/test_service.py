"""Running as a service: dropping root, reloading certificates and config, sd_notify,
graceful SIGTERM under load, the systemd unit, secrets kept out of the log."""

from __future__ import annotations

import base64
import datetime
import imaplib
import ipaddress
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailwright.net.tls import ServerNames, issue_leaf, make_ca

from ..conftest import PASSWORD, ROOT, MailServer, free_port

NOW = datetime.datetime.now(datetime.UTC)


def _server(directory: Path, extra: str = "", workers: int = 1) -> MailServer:
    srv = MailServer(directory, extra=extra)
    if workers > 1:      # a top-level key: before the tables write_config wrote
        srv.config.write_text(f"workers = {workers}\n" + srv.config.read_text())
    return srv


def _wait_for(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _ids(pid: int) -> tuple[list[int], list[int]]:
    status = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    return [int(u) for u in uids], [int(g) for g in gids]


# --- least privilege ---------------------------------------------------------------------

@pytest.fixture
def world_dir():
    """A directory `nobody` can reach (pytest's tmp_path is under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="mw-service-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _python_for_nobody(srv: MailServer) -> None:
    """The server goes on importing after it drops root, so nobody must be able to read
    the interpreter's library. This interpreter may live under /root (pyenv): then
    Debian's python3 of the same version runs the server, on this checkout's packages."""
    try:
        if subprocess.run([sys.executable, "-c", "import sqlite3, mailwright.app"],
                          user="nobody", group="nogroup", extra_groups=[],
                          capture_output=True).returncode == 0:
            return
    except PermissionError:         # cannot even be executed by nobody
        pass
    system = "/usr/bin/python3"
    packages = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{packages}"}
    if subprocess.run([system, "-c", "import sqlite3, mailwright.app, uvloop"], user="nobody",
                      group="nogroup", extra_groups=[], env={**os.environ, **env},
                      capture_output=True).returncode != 0:
        pytest.skip(f"no Python that nobody can read: {sys.executable}'s library is "
                    f"unreadable to nobody and {system} cannot import this checkout")
    srv.python, srv.env = system, env


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")
def test_root_drops_to_the_configured_user_in_every_process(world_dir):
    nobody = pwd.getpwnam("nobody")
    srv = _server(world_dir, extra='[server]\nuser = "nobody"\n', workers=2)
    _python_for_nobody(srv)
    # Run as root, the CLI works as the service user: the data_dir it creates and the
    # database it writes belong to nobody, 0700.
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    st = srv.data_dir.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nobody.pw_uid, nobody.pw_gid, 0o700)
    srv.start()
    try:
        workers = _wait_for(lambda: len(_children(srv.proc.pid)) == 2
                            and _children(srv.proc.pid), "two workers")
        for pid in (srv.proc.pid, *workers):
            uids, gids = _ids(pid)
            assert uids == [nobody.pw_uid] * 4, (pid, uids)      # real, effective, saved, fs
            assert gids == [nobody.pw_gid] * 4, (pid, gids)
        with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=10) as s:
            # Larger than what the store keeps inside the database: a file of its own.
            s.sendmail("someone@remote.test", ["alice@example.test"],
                       "Subject: owned\r\n\r\n" + ("x" * 998 + "\r\n") * 100
                       + "who owns me\r\n")
        blobs = [p for p in (srv.data_dir / "blobs").rglob("*")
                 if p.is_file() and p.parent.name != "tmp"]
        assert blobs
        for path in [*blobs, srv.data_dir / "mail.db", srv.data_dir / "tls" / "key.pem",
                     srv.data_dir / "mailwright.pid"]:
            assert path.stat().st_uid == nobody.pw_uid, path
        assert (srv.data_dir / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    finally:
        srv.stop()
    assert srv.inbox("alice@example.test")[0].endswith(b"who owns me\r\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")
def test_a_data_dir_the_user_cannot_own_is_refused_with_the_fix(world_dir):
    srv = _server(world_dir, extra='[server]\nuser = "nobody"\n')
    srv.data_dir.mkdir(mode=0o755)           # made by root beforehand
    res = srv.cli("serve", check=False)
    assert res.returncode == 1
    assert f"fix: chown -R nobody:nogroup {srv.data_dir}" in res.stderr, res.stderr
    srv.data_dir.chmod(0o755)
    os.chown(srv.data_dir, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
    res = srv.cli("serve", check=False)
    assert res.returncode == 1 and f"fix: chmod 0700 {srv.data_dir}" in res.stderr
    other = world_dir / "other"
    other.mkdir()
    res = _server(other, extra='[server]\nuser = "no-such-user"\n').cli("serve", check=False)
    assert res.returncode == 1 and "no user 'no-such-user'" in res.stderr


def _low_port() -> int:
    for port in range(1000, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port below 1024 on 127.0.0.1")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")
def test_unprivileged_serves_low_ports_only_with_the_bind_capability(world_dir):
    """systemd's User= + AmbientCapabilities=CAP_NET_BIND_SERVICE, played by setpriv."""
    world_dir.chmod(0o777)                   # nobody makes data_dir itself
    srv = _server(world_dir)
    _python_for_nobody(srv)
    low = _low_port()
    srv.config.write_text(srv.config.read_text().replace(f"port = {srv.ports['mx']}\n",
                                                         f"port = {low}\n"))
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    serve = [srv.python, "-m", "mailwright", "--config", str(srv.config), "serve"]
    env = {**os.environ, **srv.env}
    res = subprocess.run([*as_nobody, *serve], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in res.stderr, res.stderr
    with open(srv.log, "wb") as log:
        proc = subprocess.Popen([*as_nobody, "--inh-caps=+net_bind_service",
                                 "--ambient-caps=+net_bind_service", *serve],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            def greeting():
                try:
                    with socket.create_connection(("127.0.0.1", low), 1) as c:
                        return c.recv(100)
                except OSError:
                    assert proc.poll() is None, srv.log.read_text()
                    return None
            assert _wait_for(greeting, f"the mx listener on port {low}").startswith(b"220 ")
            assert _ids(proc.pid)[0] == [pwd.getpwnam("nobody").pw_uid] * 4
            assert "running as root" not in srv.log.read_text()
        finally:
            proc.terminate()
            assert proc.wait(15) == 0


# --- certificates and reload ---------------------------------------------------------------

class Certificates:
    """A CA for the test names and leaves written where the config points."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.ca = make_ca(ServerNames(("mail.example.test", "other.test", "localhost"),
                                      (ipaddress.ip_address("127.0.0.1"),), "test CA"), NOW)

    def write(self, name: str, dns: tuple[str, ...]) -> int:
        cert, key = issue_leaf(self.ca, ServerNames(dns, (ipaddress.ip_address("127.0.0.1"),),
                                                    dns[0]), NOW)
        self.put(name, cert.public_bytes(serialization.Encoding.PEM),
                 key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
        return cert.serial_number

    def put(self, name: str, cert: bytes, key: bytes) -> None:
        (self.dir / f"{name}.pem").write_bytes(cert)
        fd = os.open(self.dir / f"{name}-key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)


def _served_serial(port: int, server_name: str | None = None) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), 5) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def _log_count(srv: MailServer, text: str) -> int:
    return srv.log.read_text(errors="replace").count(text)


def test_sighup_serves_new_certificates_to_new_handshakes_only(tmp_path):
    certs = Certificates(tmp_path)
    first = certs.write("main", ("mail.example.test",))
    other = certs.write("other", ("other.test",))
    srv = _server(tmp_path, workers=2, extra=(
        '[tls]\ncert = "main.pem"\nkey = "main-key.pem"\n'
        '[[tls.certificates]]\ncert = "other.pem"\nkey = "other-key.pem"\n'))
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    srv.start()
    try:
        imaps = srv.ports["imaps"]
        # SNI picks among the certificates; no name or an unknown one gets the default.
        assert _served_serial(imaps, "other.test") == other
        assert _served_serial(imaps, "mail.example.test") == first
        assert _served_serial(imaps) == first
        assert _served_serial(imaps, "unknown.test") == first
        ctx = ssl.create_default_context(cafile=None)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        old = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=10)
        old.login("alice@example.test", PASSWORD)
        assert old.select("INBOX")[0] == "OK"

        second = certs.write("main", ("mail.example.test",))     # renewed in place
        res = srv.cli("reload")
        assert f"pid {srv.proc.pid}" in res.stdout
        _wait_for(lambda: _log_count(srv, "reloaded ") == 2, "both workers to reload")
        # Every worker serves the new certificate (connections spread over both).
        assert {_served_serial(imaps) for _ in range(8)} == {second}
        assert _served_serial(srv.ports["submissions"]) == second
        with smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10) as s:
            s.starttls(context=ctx)
            assert x509.load_der_x509_certificate(
                s.sock.getpeercert(binary_form=True)).serial_number == second
        # The session opened before the reload goes on working.
        assert old.noop()[0] == "OK"
        assert old.select("INBOX")[0] == "OK"

        # A key that does not match its certificate: refused by `mailwright reload`,
        # and, signalled anyway, by the server, which keeps serving what it had.
        key_pem = (tmp_path / "other-key.pem").read_bytes()
        certs.put("main", (tmp_path / "main.pem").read_bytes(), key_pem)
        res = srv.cli("reload", check=False)
        assert res.returncode == 1 and "not reloaded" in res.stderr
        os.kill(srv.proc.pid, signal.SIGHUP)
        _wait_for(lambda: _log_count(srv, "reload failed") >= 1, "the reload error")
        assert "still serving the previous configuration" in srv.log.read_text()
        # A config file that is not TOML any more: the same.
        good = srv.config.read_text()
        srv.config.write_text(good + "\nthis is not toml\n")
        os.kill(srv.proc.pid, signal.SIGHUP)
        _wait_for(lambda: _log_count(srv, "reload failed") >= 2, "the second reload error")
        assert "invalid TOML" in srv.log.read_text()
        assert {_served_serial(imaps) for _ in range(4)} == {second}
        assert old.noop()[0] == "OK"
        srv.config.write_text(good)
        old.logout()
    finally:
        srv.stop()
    assert srv.proc is None


# --- sd_notify ---------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_sd_notify_ready_reloading_stopping(tmp_path, workers):
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(20)
    srv = _server(tmp_path, workers=workers)

    def message() -> dict[str, str]:
        data = listener.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    try:
        srv.start(env={"NOTIFY_SOCKET": str(path)})
        ready = message()
        assert ready["READY"] == "1" and int(ready["MAINPID"]) == srv.proc.pid
        # Ready means serving: every listener answers at once.
        for role in ("mx", "imap", "pop3"):
            with socket.create_connection(("127.0.0.1", srv.ports[role]), 5) as c:
                assert c.recv(100)
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        srv.proc.send_signal(signal.SIGHUP)
        reloading = message()
        assert reloading["RELOADING"] == "1"
        assert before <= int(reloading["MONOTONIC_USEC"]) \
            <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert message()["READY"] == "1"
        srv.proc.send_signal(signal.SIGTERM)
        assert message() == {"STOPPING": "1"}
        assert srv.proc.wait(15) == 0
    finally:
        srv.stop()
        listener.close()


# --- SIGTERM -------------------------------------------------------------------------------

class SmtpClient:
    """A plain SMTP client that tells a 421 from a reset."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.file = self.sock.makefile("rb")
        self.reply()
        self.command("EHLO client.test")

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("closed without a reply")
            lines.append(line.decode().rstrip())
            if line[3:4] != b"-":
                return int(lines[-1][:3]), "\n".join(lines)

    def command(self, line: str) -> tuple[int, str]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()


def test_sigterm_under_smtp_load_keeps_every_acknowledged_message(tmp_path):
    srv = _server(tmp_path, extra="[server]\nshutdown_grace = 3.0\n")
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    srv.start()
    acked: list[str] = []
    endings: dict[str, str] = {}
    lock = threading.Lock()
    body = "payload line\r\n" * 200

    def loader(n: int) -> None:
        ending = "finished"
        try:
            c = SmtpClient(srv.ports["mx"])
            for i in range(3000):                                  # bounded
                token = f"load-{n}-{i}"
                for line in ("MAIL FROM:<load@remote.test>", "RCPT TO:<alice@example.test>",
                             "DATA"):
                    code, text = c.command(line)
                    if code != (354 if line == "DATA" else 250):
                        raise _Ended(code, text)
                code, text = c.command(f"Subject: {token}\r\n\r\n{body}.")
                if code != 250:
                    raise _Ended(code, text)
                with lock:
                    acked.append(token)
        except _Ended as e:
            ending = str(e.code) if e.code == 421 else f"unexpected {e.code} {e.text}"
        except EOFError:
            ending = "closed without 421"
        except ConnectionResetError:
            ending = "reset"
        endings[f"load-{n}"] = ending

    # Two clients in the middle of DATA when SIGTERM comes: one finishes within the grace
    # (its message is stored and acknowledged), one does not (421 after the grace).
    def slow(name: str, pause: float, signalled: threading.Event) -> None:
        c = SmtpClient(srv.ports["mx"])
        c.command("MAIL FROM:<slow@remote.test>")
        c.command("RCPT TO:<alice@example.test>")
        c.command("DATA")
        c.sock.sendall(f"Subject: {name}\r\n\r\n{body}".encode())
        signalled.wait(20)
        time.sleep(pause)
        try:
            c.sock.sendall(b"the end\r\n.\r\n")
            code, text = c.reply()
            if code == 250:
                with lock:
                    acked.append(name)
                code, text = c.reply()          # then the goodbye
            endings[name] = str(code) if code == 421 else f"unexpected {text}"
        except EOFError:
            endings[name] = "closed without 421"
        except (ConnectionResetError, BrokenPipeError):
            endings[name] = "reset"

    signalled = threading.Event()
    threads = [threading.Thread(target=loader, args=(n,)) for n in range(6)]
    threads += [threading.Thread(target=slow, args=("slow-in-grace", 0.5, signalled)),
                threading.Thread(target=slow, args=("slow-too-late", 5.0, signalled))]
    imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=10)
    pop3 = socket.create_connection(("127.0.0.1", srv.ports["pop3"]), 10)
    assert pop3.recv(100).startswith(b"+OK")
    for t in threads:
        t.start()
    _wait_for(lambda: len(acked) >= 100, "100 acknowledged messages", 30)
    srv.proc.send_signal(signal.SIGTERM)
    signalled.set()
    started = time.monotonic()
    assert srv.proc.wait(20) == 0
    took = time.monotonic() - started
    for t in threads:
        t.join(30)
    # IMAP hears BYE (RFC 9051 §7.1.5); POP3 is closed without a word (RFC 1939 §6).
    assert imap.readline().startswith(b"* BYE Server shutting down")
    assert pop3.recv(100) == b""
    srv.stop()
    assert endings == {name: "421" for name in endings} and len(endings) == 8, endings
    assert "slow-in-grace" in acked and "slow-too-late" not in acked
    assert took < 3.0 + 2.0 + 3.0          # grace, linger, slack
    stored = {m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
              for m in srv.inbox("alice@example.test")}
    missing = [t for t in acked if t not in stored]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost"


class _Ended(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code, self.text = code, text


# --- secrets ---------------------------------------------------------------------------------

def test_secrets_never_reach_the_log(tmp_path):
    http = free_port()
    srv = _server(tmp_path, extra=(f'[log]\nlevel = "debug"\n'
                                   f'[[listeners]]\nrole = "http"\nport = {http}\n'))
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    srv.cli("dkim", "generate", "example.test")
    token = srv.cli("apikey", "create", "ops", "--scope", "admin").stdout.split("\n")[1]
    srv.start()
    wrong = "wrong-battery-staple-9"
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=ctx,
                              timeout=10) as s:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("alice@example.test", wrong)
            s.login("alice@example.test", PASSWORD)
            s.sendmail("alice@example.test", ["alice@example.test"],
                       "From: alice@example.test\r\nSubject: signed\r\n\r\nhello\r\n")
        imap = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=ctx, timeout=10)
        imap.login("alice@example.test", PASSWORD)
        imap.logout()
        for bearer in (token, token[:-4] + "AAAA"):
            request = urllib.request.Request(f"http://127.0.0.1:{http}/api/v1/domains",
                                             headers={"Authorization": f"Bearer {bearer}"})
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError as e:
                assert e.code == 401
        _wait_for(lambda: any(b"DKIM-Signature" in m
                              for m in srv.inbox("alice@example.test")), "a signed message")
    finally:
        srv.stop()
    text = srv.log.read_text(errors="replace")
    text += srv.cli("events", "export").stdout
    # The run was recorded: the logins that worked and failed, the signed message.
    assert "auth-ok" in text and "auth-fail" in text and "event=accepted" in text
    plain = base64.b64encode(f"\0alice@example.test\0{PASSWORD}".encode()).decode()
    secrets = {"password": PASSWORD, "wrong password": wrong, "AUTH PLAIN": plain,
               "API key": token, "API key secret part": token.split("_", 2)[2]}
    for key_file in (srv.data_dir / "dkim" / "example.test").iterdir():
        lines = [ln for ln in key_file.read_text().splitlines()
                 if ln and not ln.startswith("-----")]
        secrets[f"DKIM key {key_file.name}"] = max(lines, key=len) if lines else ""
    for what, secret in secrets.items():
        assert secret and secret not in text, f"the {what} is in the log"


# --- the systemd unit -----------------------------------------------------------------------

def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify checks every directive and that the commands exist; the
    installed path (/usr/local/bin) is this checkout's for the check."""
    unit = (ROOT / "contrib" / "systemd" / "mailwright.service").read_text()
    binary = Path(shutil.which("mailwright") or ROOT / ".venv" / "bin" / "mailwright")
    assert "/usr/local/bin/mailwright serve" in unit
    copy = tmp_path / "mailwright.service"
    copy.write_text(unit.replace("/usr/local/bin/mailwright", str(binary)))
    res = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    for directive in ("Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict",
                      "ReadWritePaths=/var/lib/mailwright", "PrivateTmp=yes",
                      "ProtectHome=yes", "RestrictAddressFamilies=",
                      "SystemCallFilter=@system-service", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert re.search(rf"^{re.escape(directive)}", unit, re.M), directive
