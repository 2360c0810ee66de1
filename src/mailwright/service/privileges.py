"""Least privilege: bind as root, then run as the configured user for good.

Postfix's and Dovecot's way: the listening sockets are the only thing root is needed
for, so `mailwright serve` binds every listener first and then switches to
[server] user/group (setgroups, setgid, setuid: in that order, since each needs the
privilege the next one gives up) before it opens the store or forks a worker. What the
server will write (data_dir) must belong to that user, and what it reads as secrets
(TLS keys) must be readable by it and by no one else; both are checked before the
switch, each refusal saying how to fix it.

Without [server] user: a server started as root stays root (with a warning); one
started unprivileged serves ports below 1024 only with CAP_NET_BIND_SERVICE (systemd's
AmbientCapabilities=), which is checked and said.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..config import Config

log = logging.getLogger("mailwright")

CAP_NET_BIND_SERVICE = 10           # linux/capability.h
PRIVILEGED_PORTS = 1024
# Linux ≥ 4.11 lets the administrator move the line (containers often set 0).
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


class PrivilegeError(Exception):
    """Why the server will not run as configured, and how to fix it."""


@dataclass(frozen=True)
class Identity:
    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]         # supplementary groups (ssl-cert for /etc/ssl/private)

    def fix(self, path: Path, mode: str = "0700") -> str:
        try:
            group = grp.getgrgid(self.gid).gr_name
        except KeyError:
            group = str(self.gid)
        return f"chown -R {self.user}:{group} {path} && chmod {mode} {path}"


def resolve(config: Config) -> Identity | None:
    """The configured user and group, looked up; None when none is configured."""
    settings = config.server
    if not settings.user:
        return None
    try:
        pw = pwd.getpwnam(settings.user)
    except KeyError:
        raise PrivilegeError(
            f"[server] user: no user {settings.user!r} on this system; create it with "
            f"`adduser --system --group --home {config.data_dir} {settings.user}`") from None
    gid = pw.pw_gid
    if settings.group:
        try:
            gid = grp.getgrnam(settings.group).gr_gid
        except KeyError:
            raise PrivilegeError(f"[server] group: no group {settings.group!r} on this "
                                 "system") from None
    return Identity(pw.pw_name, pw.pw_uid, gid,
                    tuple(sorted(set(os.getgrouplist(pw.pw_name, gid)))))


def has_bind_capability() -> bool:
    """Whether this process may bind ports below 1024 without being root."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_BIND_SERVICE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def check_start(config: Config, identity: Identity | None) -> None:
    """Before binding: whether who we are and what is configured fit together."""
    euid = os.geteuid()
    first_free = _first_unprivileged_port()
    low = [f"{lst.role} {lst.port}" for lst in config.listeners if lst.port < first_free]
    if identity is None:
        if euid == 0:
            log.warning("running as root: set [server] user (README: Running as a service) "
                        "so that root is dropped once the listeners are bound")
        elif low and not has_bind_capability():
            raise PrivilegeError(
                f"listeners on ports below {first_free} ({', '.join(low)}) need root "
                "with [server] user, or CAP_NET_BIND_SERVICE "
                "(systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)")
        return
    if euid != 0 and euid != identity.uid:
        raise PrivilegeError(f"[server] user = {identity.user!r}: start the server as root "
                             f"(it switches after binding) or as {identity.user} itself")


def _first_unprivileged_port() -> int:
    try:
        return int(UNPRIVILEGED_PORT_START.read_text())
    except (OSError, ValueError):
        return PRIVILEGED_PORTS


def prepare_data_dir(config: Config, identity: Identity | None) -> None:
    """data_dir exists and belongs to whoever will write it: made (0700, chowned) when
    missing, else checked, with the command that fixes it."""
    path = config.data_dir
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
        if identity is not None and os.geteuid() == 0:
            os.chown(path, identity.uid, identity.gid)
        log.info("created data_dir %s", path)
        return
    if identity is None:
        return
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise PrivilegeError(f"data_dir {path} is not a directory")
    # The store, its WAL, the blob tree, keys: whatever is at the top belongs to the user,
    # or the server fails later on a write it cannot make (a full walk of the blobs would
    # cost minutes on a large store; `chown -R` fixes everything at once).
    wrong = [p for p in (path, *_top_entries(path)) if p.lstat().st_uid != identity.uid]
    if wrong:
        raise PrivilegeError(
            f"data_dir: {wrong[0]} belongs to uid {wrong[0].lstat().st_uid}, not to "
            f"[server] user {identity.user} (uid {identity.uid}); fix: "
            + identity.fix(path))
    if st.st_mode & 0o077:
        raise PrivilegeError(
            f"data_dir {path} has mode {stat.S_IMODE(st.st_mode):04o}: it holds every "
            f"message and private key, so only {identity.user} may enter it; fix: "
            f"chmod 0700 {path}")


def check_keys(keys: Iterable[Path], identity: Identity | None) -> None:
    """Private keys: nobody but their owner (and a key group such as Debian's ssl-cert)
    may read them, and the server must be able to read them again after the switch
    (SIGHUP re-reads them)."""
    for key in keys:
        st = key.stat()
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o007:
            raise PrivilegeError(f"TLS key {key} has mode {mode:04o}: anyone on this machine "
                                 f"can read it; fix: chmod 0600 {key} (or 0640 with a key "
                                 "group such as ssl-cert)")
        if identity is None:
            continue
        if not _can(identity, key, 0o4):
            raise PrivilegeError(
                f"TLS key {key} cannot be read by [server] user {identity.user}, which "
                f"re-reads it on reload; fix: chown {identity.user} {key} && chmod 0600 "
                f"{key}, or chgrp ssl-cert {key} && chmod 0640 {key} && "
                f"adduser {identity.user} ssl-cert")


def check_python(identity: Identity | None) -> None:
    """Mailwright goes on importing after the switch (modules are loaded when first
    needed): the interpreter's library, the installed packages and ours must be
    readable by the user. A Python kept under /root (pyenv) is not."""
    if identity is None or os.geteuid() != 0:
        return
    paths = sysconfig.get_paths()
    ours = Path(__file__).resolve().parent.parent
    for place in dict.fromkeys((paths["stdlib"], paths["platstdlib"], paths["purelib"],
                                paths["platlib"], str(ours), *sys.path)):
        path = Path(place)
        if place and path.is_dir() and not _can(identity, path, 0o5):
            raise PrivilegeError(
                f"[server] user {identity.user} cannot read {path}, where Python finds "
                f"modules ({sys.executable}); install Mailwright and its Python where "
                "that user can read them (e.g. a virtualenv in /opt/mailwright made with "
                "Debian's python3)")


def drop(identity: Identity | None) -> None:
    """Become the configured user for good (nothing when none is configured or when we
    already are it); a failure is fatal: never serve as root when told not to."""
    if identity is None or (os.geteuid() == identity.uid and os.getuid() == identity.uid):
        return
    try:
        os.setgroups(list(identity.groups))
        os.setgid(identity.gid)
        os.setuid(identity.uid)
    except OSError as e:
        raise PrivilegeError(f"cannot switch to [server] user {identity.user}: "
                             f"{e.strerror or e}") from None
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PrivilegeError(f"switched to {identity.user} but could become root again")
    os.environ["HOME"] = pwd.getpwuid(identity.uid).pw_dir
    log.info("running as user %s (uid %d, gid %d)", identity.user, identity.uid, identity.gid)


def _can(identity: Identity, path: Path, bits: int) -> bool:
    """Whether the user may do `bits` (4 read, 1 search/execute; permission bits for one
    class of users) to path and search every directory on the way to it."""
    path = path.resolve()
    for directory in reversed(path.parents):
        if not _permits(identity, directory.stat(), 0o1):
            return False
    return _permits(identity, path.stat(), bits)


def _permits(identity: Identity, st: os.stat_result, bits: int) -> bool:
    if st.st_uid == identity.uid:
        return bool(st.st_mode >> 6 & bits == bits)
    if st.st_gid in identity.groups:
        return bool(st.st_mode >> 3 & bits == bits)
    return bool(st.st_mode & bits == bits)


def _top_entries(path: Path) -> list[Path]:
    return [*path.iterdir(), *(p for d in ("tls", "dkim") if (path / d).is_dir()
                               for p in (path / d).rglob("*"))]
