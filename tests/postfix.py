"""A private, throwaway Postfix instance on loopback (Debian's postfix package, run as
root): its own main.cf, master.cf, queue and log under one directory; started with
`postfix -c DIR start`, stopped with `stop`. The benchmarks relay through it
(bench/relay.py); the diagnostics tests probe it (tests/e2e/test_check_smtp.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")


def _quiet(cmd: list[str]) -> None:
    # Postfix prints its errors only to a terminal (else to syslog): give it one.
    res = subprocess.run(["script", "-qc", " ".join(cmd), "/dev/null"],
                         capture_output=True, text=True, timeout=60)
    if "fatal" in res.stdout:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stdout.strip()}")


def _incomplete(path: Path) -> bool:
    try:
        return not path.stat().st_mode & 0o100
    except FileNotFoundError:          # removed since it was listed
        return False


class Postfix:
    name = "postfix"

    def __init__(self, work: Path, port: int, main_cf: str,
                 hostname: str = "postfix.example.test"):
        """`main_cf`: settings added to the instance's own (directories, loopback
        listener, no aliases, log file); later lines win over earlier ones."""
        self.dir = work / "postfix"
        for sub in ("etc", "spool", "data"):
            (self.dir / sub).mkdir(parents=True)
        for parent in (self.dir, *self.dir.parents):       # the postfix user walks in
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
        shutil.chown(self.dir / "data", "postfix")
        self.port = port
        etc = self.dir / "etc"
        (etc / "main.cf").write_text(f"""compatibility_level = 3.6
queue_directory = {self.dir / 'spool'}
data_directory = {self.dir / 'data'}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {hostname}
maillog_file = {self.dir / 'maillog'}
maillog_file_prefixes = {self.dir}
alias_maps =
alias_database =
{main_cf}
""")
        master = Path("/etc/postfix/master.cf").read_text()
        lines = []
        for line in master.splitlines():
            parts = line.split()
            if line and not line[0].isspace() and not line.startswith("#") and len(parts) >= 8:
                if parts[0] == "smtp" and parts[1] == "inet":
                    parts[0] = f"127.0.0.1:{self.port}"
                parts[4] = "n"                               # no chroot
                line = " ".join(parts)
            lines.append(line)
        if not any(line.startswith("postlog") for line in lines):
            lines.append("postlog unix-dgram n - n - 1 postlogd")
        (etc / "master.cf").write_text("\n".join(lines) + "\n")
        _quiet([POSTFIX, "-c", str(etc), "set-permissions"])
        _quiet([POSTFIX, "-c", str(etc), "start"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postfix did not listen on 127.0.0.1:{self.port}: "
                           f"{self.log()[-2000:]}")

    def queued(self, settle: float = 10.0) -> list[Path]:
        """Every queue file, in every queue: mail that was accepted. A file still being
        written (in incoming/, not yet marked complete by its owner-execute bit) is
        waited for up to `settle` seconds: cleanup(8) removes an aborted one once
        smtpd has noticed the client went away."""
        spool = self.dir / "spool"
        deadline = time.monotonic() + settle
        while True:
            files = [p for q in QUEUES for p in (spool / q).rglob("*") if p.is_file()]
            writing = [p for p in files if p.parent.name == "incoming" and _incomplete(p)]
            if not writing or time.monotonic() > deadline:
                return files
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return (self.dir / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        _quiet([POSTFIX, "-c", str(self.dir / "etc"), "stop"])
