"""Shared fixtures: a real Mailwright server process on loopback, and its CLI."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


def pytest_sessionstart(session):
    """Every tool the suite drives must be able to do what the tests ask of it. A missing
    capability (swaks without TLS, curl without IMAP...) fails the run here, naming the
    tool, the capability and the Debian package, rather than as scattered failures or
    skips."""
    script = ROOT / "scripts" / "install-test-deps.sh"
    res = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0:
        pytest.exit(f"test tools lack capabilities the suite needs:\n{res.stdout}{res.stderr}"
                    "install them with `make test-deps` (scripts/install-test-deps.sh)",
                    returncode=pytest.ExitCode.USAGE_ERROR)


class PortAllocator:
    """Ports for test servers, which bind them later themselves.

    Asking the kernel for a free port (bind to port 0, close, hand the number out) can
    return the same port twice within a run, since a closed port is free again: seven
    listeners of one config then collide. The same port can also become the source port
    of one of the suite's many outgoing connections before the server binds it. So: every
    port is handed out once per run, walking from a random start (concurrent runs rarely
    meet) through ports below the kernel's ephemeral range, and is checked free first.
    """

    FIRST = 10000

    def __init__(self):
        self.handed_out: set[int] = set()
        self.ports = range(self.FIRST, max(self.FIRST + 1000, _ephemeral_low()))
        self.next = random.randrange(len(self.ports))

    def take(self, host: str) -> int:
        for _ in range(len(self.ports)):
            port = self.ports[self.next % len(self.ports)]
            self.next += 1
            if port not in self.handed_out and _bindable(host, port):
                self.handed_out.add(port)
                return port
        raise RuntimeError(f"no free port on {host} in {self.ports}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(host: str, port: int) -> bool:
    """Free for TCP and UDP (unbound and the DNS test servers use both)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(family, kind) as s:
                s.bind((host, port))
    except OSError:
        return False
    return True


_ports = PortAllocator()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, and that no other caller in this run gets."""
    return _ports.take(host)


_dns_server = None


def loopback_dns():
    """The loopback DNS server every test server resolves through (never the system's)."""
    global _dns_server
    if _dns_server is None:
        from .dnsserver import DNSServer
        _dns_server = DNSServer()
        for path in (ROOT / "tests" / "data" / "zones").glob("*.zone"):
            _dns_server.add_zone_file(path)
        _dns_server.start()
    return _dns_server


def write_config(directory: Path, *, host: str = "127.0.0.1", extra: str = "",
                 hostname: str = "mail.example.test",
                 dns_port: int | None = None) -> tuple[Path, dict]:
    ports = {role: free_port(host)
             for role in ("mx", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")}
    listeners = "".join(
        f'\n[[listeners]]\nrole = "{role}"\naddress = "{host}"\nport = {port}\n'
        for role, port in ports.items())
    path = directory / "mailwright.toml"
    path.write_text(
        f'hostname = "{hostname}"\ndata_dir = "data"\n{listeners}\n'
        "[auth]\nfailure_delay = 0.0\nmax_failures = 5\n"
        f'[dns]\nnameservers = ["127.0.0.1"]\nport = {dns_port or loopback_dns().port}\n'
        "timeout = 2.0\n"
        f"{extra}\n")
    return path, ports


class MailServer:
    """`mailwright serve` in a subprocess, and `mailwright` CLI calls on its config."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", extra: str = "",
                 hostname: str = "mail.example.test", dns_port: int | None = None):
        self.dir = directory
        self.host = host
        self.config, self.ports = write_config(directory, host=host, extra=extra,
                                               hostname=hostname, dns_port=dns_port)
        self.data_dir = directory / "data"
        self.proc: subprocess.Popen | None = None
        self.log = directory / "server.log"
        self.python = sys.executable       # what runs `mailwright` (tests may change it)
        self.env: dict[str, str] = {}

    def cli(self, *args: str, input: str | None = None, check: bool = True):
        res = subprocess.run([self.python, "-m", "mailwright", "--config", str(self.config),
                              *args], input=input, capture_output=True, text=True, timeout=60,
                             env={**os.environ, **self.env} if self.env else None)
        if check and res.returncode != 0:
            raise AssertionError(f"mailwright {' '.join(args)} failed: {res.stderr}")
        return res

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        self.cli("user", "add", address, "--password-stdin", input=password + "\n")

    def start(self, env: dict[str, str] | None = None) -> MailServer:
        """Start serving; env: more environment variables (NOTIFY_SOCKET...)."""
        self._log_file = open(self.log, "ab")
        # A pid file left by a server killed earlier (kill -9 tests) must not count.
        (self.data_dir / "mailwright.pid").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [self.python, "-m", "mailwright", "--config", str(self.config), "serve"],
            stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env, **(env or {})} if env or self.env else None)
        # Started, not only listening: the sockets are bound (and accept into their
        # backlog) before the server has made its certificate and opened its store; the
        # pid file is written once those are done (cli.py cmd_serve). No greeting is
        # read: a probe would count as a connection in the server's metrics.
        pidfile = self.data_dir / "mailwright.pid"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if pidfile.exists():
                    with socket.create_connection((self.host, self.ports["submissions"]), 0.2):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log_file.close()
        self.proc = None

    def store(self):
        from mailwright.imap.fetch import views as fetch_views
        from mailwright.store.sqlite import SQLiteStore
        return SQLiteStore(self.data_dir, render_views=fetch_views)

    def inbox(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """The stored messages of an account, read straight from the store files."""
        from mailwright.address import parse_mailbox
        store = self.store()
        try:
            rows = store.mailbox_messages(parse_mailbox(address), mailbox)
            return [asyncio.run(store.read_blob(r["blob"])) for r in rows]
        finally:
            store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MailServer(tmp_path_factory.mktemp("mw"))
    srv.cli("domain", "add", "example.test")
    srv.cli("domain", "add", "bücher.test")
    for user in ("alice@example.test", "bob@example.test", "carol@example.test",
                 "Dörte@bücher.test"):
        srv.add_user(user)
    srv.cli("alias", "add", "team@example.test", "alice@example.test", "bob@example.test")
    srv.cli("alias", "add", "postmaster@example.test", "carol@example.test")
    srv.start()
    yield srv
    srv.stop()


def require(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None and not os.path.exists(tool):
            pytest.fail(f"{tool} is not installed: run `make test`, which installs it")


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (tests/pg.py), on 127.0.0.1."""
    from tests.pg import PostgresCluster
    cluster = PostgresCluster(free_port()).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_dsn(postgres):
    """A fresh database with this release's schema, dropped after the test."""
    dsn = postgres.create_database(template=postgres.migrated_template())
    yield dsn
    postgres.drop_database(dsn)
