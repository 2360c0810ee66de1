"""What a reload (SIGHUP, `mailwright reload`) may change, and the check that a new
config file can be served before anything of the running one is touched.

A reload applies the TLS certificates ([tls]) and the log level ([log] level). The rest
is wired into objects built at start (listeners and their sockets, worker processes,
the store under data_dir, the user we switched to, the queue runner, the checks, the
HTTP site...), so a change there is reported as needing a restart rather than half
applied."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ..config import Config, ConfigError, load
from ..net.certs import CertificateError, load_pair

RELOADED = ("tls", "log")


class ReloadError(Exception):
    """Why the new configuration was not taken; the old one goes on serving."""


def load_checked(path: str) -> Config:
    """The config file as it is now, with every configured certificate loadable."""
    try:
        config = load(path)
        for pair in config.tls.pairs():
            load_pair(Path(pair.cert), Path(pair.key))
    except (ConfigError, CertificateError) as e:
        raise ReloadError(str(e)) from None
    return config


def needs_restart(old: Config, new: Config) -> list[str]:
    """The settings that differ and that only a restart applies ("path" is where the
    file was found, not a setting)."""
    return [f.name for f in fields(Config)
            if f.name not in (*RELOADED, "path") and getattr(old, f.name) != getattr(new, f.name)]
