"""`mailwright migrate` on a real PostgreSQL database: the schema is applied once, a node
refuses a database without it (saying what to do), and an unreachable database is an
error that names it without its password."""

from __future__ import annotations

from tests.conftest import MailServer


def pg_server(tmp_path, dsn: str, password_file: str = "") -> MailServer:
    extra = f'[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
    if password_file:
        extra += f'password_file = "{password_file}"\n'
    return MailServer(tmp_path, extra=extra)


def test_migrate_applies_the_schema_once_and_nodes_wait_for_it(tmp_path, postgres):
    server = pg_server(tmp_path, postgres.create_database())
    before = server.cli("domain", "list", check=False)
    assert before.returncode == 1
    assert "run `mailwright migrate`" in before.stderr
    assert "Traceback" not in before.stderr
    first = server.cli("migrate")
    assert "applied 0001_initial" in first.stdout
    again = server.cli("migrate")
    assert "applied" not in again.stdout and "nothing to do" in again.stdout
    server.cli("domain", "add", "pg.test")
    assert "pg.test" in server.cli("domain", "list").stdout


def test_an_unreachable_database_is_named_without_its_password(tmp_path, postgres):
    (tmp_path / "db.secret").write_text("hunter2-secret\n")
    dsn = f"postgresql://mw@127.0.0.1:{postgres.port + 1}/maildb"
    server = pg_server(tmp_path, dsn, password_file="db.secret")
    for args in (("domain", "list"), ("migrate",)):
        res = server.cli(*args, check=False)
        assert res.returncode == 1, res
        assert "'maildb' on 127.0.0.1" in res.stderr
        assert "hunter2" not in res.stderr + res.stdout
        assert "Traceback" not in res.stderr
