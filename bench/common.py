"""Helpers shared by the benchmarks: ports, waiting for servers, memory, a Mailwright
instance in a scratch directory."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PASSWORD = "bench-password-1"
ROOT = Path(__file__).resolve().parent.parent
SMTP_SOURCE = "/usr/sbin/smtp-source"

sys.path.insert(0, str(ROOT))       # tests/: the loopback DNS server, the private Postfix
from tests.postfix import POSTFIX  # noqa: E402, F401 (re-exported to the benchmarks)
from tests.postfix import Postfix as PostfixInstance  # noqa: E402

_dns = None


def loopback_dns():
    """The benchmarks' DNS: a loopback server (the tests' own) with what inbound checks
    look up for the load generators' mail — SPF and DMARC of remote.test, the client's
    PTR — so the authentication checks run as for real mail, never the system resolver."""
    global _dns
    if _dns is None:
        from tests.dnsserver import DNSServer
        _dns = DNSServer()
        _dns.add_records({
            "remote.test": [("TXT", "v=spf1 ip4:127.0.0.0/8 -all")],
            "_dmarc.remote.test": [("TXT", "v=DMARC1; p=reject")],
            "client.example.net": [("A", "127.0.0.1")],
            "1.0.0.127.in-addr.arpa": [("PTR", "client.example.net")],
        })
        _dns.start()
    return _dns


def free_ports(n: int) -> list[int]:
    """n distinct free ports: all bound at once before any is released, so one
    configuration never gets the same port twice."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited early with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} never opened")


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0                     # exited: it holds nothing
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of one process so far, its own only (proc(5) utime,
    stime); 0 once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants so far: each live
    one's own time plus that of the children it has reaped (Dovecot's master reaps a
    process per connection; proc(5) utime, stime, cutime, cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except OSError:             # it exited meanwhile: its parent counts it once reaped
        return 0.0
    return total + sum(tree_cpu_seconds(c) for c in children)


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (a supervisor + workers, Dovecot's master and
    its process per connection); one that exits meanwhile is left out."""
    try:
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except OSError:
        return []
    return [pid] + [p for c in children for p in tree_pids(c)]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (a supervisor + workers)."""
    return sum(rss_mb(p) for p in tree_pids(pid))


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process tree (smaps_rollup Pss): pages shared by
    several processes (forked workers, Dovecot's process per connection) counted once
    in all, where summing RSS counts them once per process."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass                       # exited meanwhile
    return total / 1024


def smtp_source(port: int, messages: int, size: int, sessions: int) -> float:
    start = time.perf_counter()
    res = subprocess.run(
        [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
         "-M", "client.example.net", "-f", "bench@remote.test", "-t", "alice@example.test",
         f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"smtp-source failed: {res.stderr.strip()}")
    return elapsed


def cpu_times() -> tuple[float, float, float]:
    """(busy, iowait, total) jiffies of all cores so far (proc(5) /proc/stat `cpu`)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, iowait, busy + idle + iowait


def rotation(items: list, run: int) -> list:
    """The order of run `run`: each item goes first in turn, so that the machine's
    noise and the cost of going second fall on all of them alike."""
    shift = run % len(items)
    return items[shift:] + items[:shift]


def fmt(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.0f} [{min(rates):.0f}-{max(rates):.0f}]"


class Mailwright:
    """A Mailwright server with every role on fresh loopback ports and one user."""
    name = "mailwright"

    def __init__(self, work: Path, user: str = "alice@example.test", extra: str = "",
                 workers: int = 1, prepare: Callable[[Path], None] | None = None,
                 name: str = "mailwright", setup: bool = True, checkout: Path | None = None,
                 launcher: list[str] | None = None):
        """prepare(data_dir): called first, to put data in place (bench/event_prune.py);
        setup: add the domain and user (False: a second node on a store that has them);
        checkout: run another checkout's code (its src/), e.g. main beside a branch;
        launcher: the command that serves, in place of `python -m mailwright` (its
        arguments follow: bench/ceiling_server.py)."""
        self.name = name
        self.dir = work / name
        self.dir.mkdir(parents=True)
        self.env = None
        if checkout is not None:
            self.name = f"mw@{checkout.name}"
            self.env = {**os.environ, "PYTHONPATH": str(checkout.resolve() / "src")}
        if prepare:
            prepare(self.dir / "data")
        roles = ("mx", "submission", "submissions", "pop3", "pop3s", "imap")
        self.ports = dict(zip(roles, free_ports(len(roles)), strict=True))
        self.port = self.ports["mx"]
        listeners = "".join(f"[[listeners]]\nrole = \"{role}\"\nport = {port}\n"
                            for role, port in self.ports.items())
        self.config = self.dir / "bench.toml"
        self.config.write_text(f"""
workers = {workers}
hostname = "mail.example.test"
data_dir = "data"
{listeners}
[limits]
max_connections = 20000
max_connections_per_ip = 20000
max_messages_per_connection = 1000000
[log]
level = "warning"
[dns]
nameservers = ["127.0.0.1"]
port = {loopback_dns().port}
{extra}
""")
        self.cli = cli = [sys.executable, "-m", "mailwright", "--config", str(self.config)]
        if setup:
            subprocess.run(cli + ["domain", "add", user.split("@")[1]], check=True,
                           capture_output=True, env=self.env)
            self.add_user(user)
        serve = (launcher or cli[:3]) + cli[3:] + ["serve"]
        self.proc = subprocess.Popen(serve, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "server.log", "wb"), env=self.env)
        wait_port(self.port, self.proc)

    def add_user(self, address: str) -> None:
        subprocess.run(self.cli + ["user", "add", address, "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                       env=self.env)

    def stored(self) -> int:
        import sqlite3
        with sqlite3.connect(self.dir / "data" / "mail.db") as c:
            return c.execute("SELECT count(*) FROM messages").fetchone()[0]

    def settle(self, limit: float = 120) -> float:
        """Wait until the text index has caught up (no text pending: store/sqlite/
        textindex.py), so that its CPU is counted with the run; seconds waited."""
        import sqlite3
        start = time.perf_counter()
        with sqlite3.connect(self.dir / "data" / "mail.db") as c:
            if not c.execute("SELECT 1 FROM sqlite_master "
                             "WHERE name='message_text_pending'").fetchone():
                return 0.0                  # a checkout that indexes at delivery
            while c.execute("SELECT 1 FROM message_text_pending LIMIT 1").fetchone():
                if time.perf_counter() - start > limit:
                    sys.exit("the text index did not catch up")
                time.sleep(0.01)
        return time.perf_counter() - start


class Postfix(PostfixInstance):
    """The throwaway private Postfix of the tests (tests/postfix.py), taking mail from
    loopback clients into its queue (fsynced before 250, as Postfix always does) and
    then relaying it to `relay_to`, or, with None, discarding it (the discard(8)
    transport): the accept path alone."""

    def __init__(self, work: Path, relay_to: int | None = None, extra: str = ""):
        """extra: main.cf settings added last (they win)."""
        onward = f"relayhost = [127.0.0.1]:{relay_to}" if relay_to else \
            "default_transport = discard"
        super().__init__(work, free_port(), f"""mydestination =
mynetworks = 127.0.0.0/8
{onward}
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
default_destination_concurrency_limit = 20
{extra}""", hostname="bench.example.test")
        self.recipient = "rcpt@sink.test"

    @property
    def pid(self) -> int:
        """The master process (postfix start daemonizes it: it is not our child)."""
        return int((self.dir / "spool" / "pid" / "master.pid").read_text().split()[0])


DOVECOT = "/usr/sbin/dovecot"
MAIL_UID = 65534          # dovecot refuses mail access as root


class Dovecot:
    """Dovecot from Debian on a loopback port with a throwaway config: one static user
    (the same argon2id password as Mailwright's), plaintext, maildir. `folders` maps a
    Maildir++ folder ("" for INBOX, ".Search" ...) to messages put there as files."""
    name = "dovecot"

    def __init__(self, work: Path, protocol: str, folders: dict[str, list[bytes]],
                 extra: str = "", scheme: str = "ARGON2ID", name: str = "dovecot"):
        """scheme: how the password is stored — ARGON2ID (the same parameters as
        Mailwright's default policy) or PLAIN (no hashing at all)."""
        from mailwright.auth.passwords import hash_password
        self.name = name
        self.dir = work / name
        for parent in (work, *work.parents):       # the mail user must pass through
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
        home = self.dir / "home"
        for folder, messages in folders.items():
            maildir = home / "Maildir" / folder
            for sub in ("new", "cur", "tmp"):
                (maildir / sub).mkdir(parents=True)
            for i, msg in enumerate(messages):
                (maildir / "new" / f"1795000000.M{i}P1.bench").write_bytes(msg)
        for root, dirs, files in os.walk(home):
            for name in dirs + files:
                os.chown(os.path.join(root, name), MAIL_UID, MAIL_UID)
        os.chown(home, MAIL_UID, MAIL_UID)
        (self.dir / "run").mkdir()
        self.port = free_port()
        ports = {"pop3": 0, "imap": 0, protocol: self.port}
        conf = self.dir / "dovecot.conf"
        conf.write_text(f"""
protocols = {protocol}
listen = 127.0.0.1
base_dir = {self.dir / 'run'}
state_dir = {self.dir / 'run'}
log_path = {self.dir / 'dovecot.log'}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password={{{scheme}}}{hash_password(PASSWORD) if scheme == "ARGON2ID" else PASSWORD}
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={home}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports['pop3']}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {ports['imap']}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{extra}""")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)


@contextlib.contextmanager
def backend_stores(prefix: str) -> Iterator[dict]:
    """{"sqlite": store, "postgresql": store}: both backends side by side, empty, in a
    scratch directory, PostgreSQL on a throwaway cluster (tests/pg.py); closed and
    stopped after."""
    from mailwright.imap.fetch import views as fetch_views
    from mailwright.store.postgresql import PostgresStore
    from mailwright.store.sqlite import SQLiteStore
    from tests.pg import PostgresCluster
    cluster = PostgresCluster(free_port()).start()
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    stores: dict = {}
    try:
        stores["sqlite"] = SQLiteStore(scratch / "sqlite", render_views=fetch_views)
        dsn = cluster.create_database(template=cluster.migrated_template())
        stores["postgresql"] = PostgresStore(dsn, scratch / "pg", render_views=fetch_views)
        yield stores
    finally:
        for s in stores.values():
            s.close()
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
