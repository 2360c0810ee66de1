"""The service parts without a server: config keys, what a reload applies, the JSON log
lines, sd_notify datagrams, the checks made before dropping root."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from mailwright.config import ConfigError, load
from mailwright.net.notify import Notifier
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
    from mailwright.config import LogSettings
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
