"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries, an unprivileged
cluster in a temporary directory (initdb + pg_ctl), listening on 127.0.0.1 only — no
system service, nothing outside the directory.

initdb refuses to run as root, so under root the cluster belongs to the `postgres` user
the Debian package creates (runuser); otherwise to the user running the tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def pg_bindir() -> Path | None:
    """The newest installed server's binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    def __init__(self, port: int) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server: install Debian's postgresql package "
                               "(scripts/install-test-deps.sh does)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="mw-pg-"))
        self.datadir = self.root / "data"
        self.port = port
        self.template: str | None = None
        self.owner = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> PostgresCluster:
        # fsync stays on: the tests check that nothing acknowledged is lost on kill -9.
        self._run("initdb", "-D", str(self.datadir), "-U", self.owner, "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions")
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "log"), "-w",
                  "-t", "60", "-o",
                  f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                  f"-c unix_socket_directories={self.root} -c max_connections=300 "
                  "-c shared_buffers=64MB", "start")
        return self

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.owner}@127.0.0.1:{self.port}/{dbname}"

    def migrated_template(self) -> str:
        """A database with this release's schema, made once: each test's database is a
        copy of it (CREATE DATABASE ... TEMPLATE takes ~0.1 s, migrating ~1 s)."""
        if self.template is None:
            from mailwright.store.postgresql.migrate import migrate
            dsn = self.create_database()
            migrate(dsn)
            self.template = dsn.rsplit("/", 1)[1]
        return self.template

    def create_database(self, template: str | None = None) -> str:
        """A new empty database (or a copy of `template`); its DSN."""
        import psycopg
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{clause}")
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        import psycopg
        name = dsn.rsplit("/", 1)[1]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        deadline = time.monotonic() + 30
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop",
                  check=False)
        while time.monotonic() < deadline and (self.datadir / "postmaster.pid").exists():
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)
