"""The event registry: one declared schema per event type, one way to emit, the docs
table and every call site in src/ held to it."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import pytest

from mailwright.events.log import EventLog
from mailwright.events.types import Event, EventSchemaError

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "mailwright"


class _Recorder:
    """Stands in for the store: keeps what record_event was given."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def record_event(self, row) -> None:
        self.rows.append((row.type, row.session, row.message_id, json.dumps(row.data)))
        self.keys = (row.address, row.domain, row.tag)


def test_emit_writes_the_name_and_fields_as_before(caplog):
    rec = _Recorder()
    with caplog.at_level(logging.INFO, logger="mailwright.events"):
        EventLog(rec).emit(Event.REJECTED, "S1", None, ip="127.0.0.1", code=550,
                           reason="unknown-user", rcpt="a b@x.test")
    assert caplog.messages == [
        'event=rejected session=S1 ip=127.0.0.1 code=550 reason=unknown-user '
        'rcpt="a b@x.test"']
    assert rec.rows == [("rejected", "S1", None, json.dumps(
        {"ip": "127.0.0.1", "code": 550, "reason": "unknown-user", "rcpt": "a b@x.test"}))]
    assert type(rec.rows[0][0]) is str             # the plain name, not the enum


def test_emit_refuses_names_outside_the_registry():
    with pytest.raises(TypeError):
        EventLog(_Recorder()).emit("accepted", "S1")          # type: ignore[arg-type]


def test_emit_refuses_missing_and_undeclared_fields():
    log = EventLog(None)
    with pytest.raises(EventSchemaError, match=r"missing \['reason'\]"):
        log.emit(Event.REJECTED, "S1", code=550)
    with pytest.raises(EventSchemaError, match=r"undeclared \['colour'\]"):
        log.emit(Event.TIMEOUT, "S1", ip="::1", colour="red")
    log.emit(Event.REJECTED, "S1", code=552, reason="too-big")      # optional left out


def test_names_are_unique_and_lowercase():
    names = [e.value for e in Event]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names)


def _emit_calls():
    """(file:line, event expression, keyword names) of every `.emit(...)` in src/."""
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "emit" and node.args:
                names = set()
                for kw in node.keywords:
                    if kw.arg is not None:
                        names.add(kw.arg)
                    elif isinstance(kw.value, ast.Dict):       # **{"client": ...}
                        names |= {k.value for k in kw.value.keys if isinstance(k, ast.Constant)}
                    else:
                        names.add("**")
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node.args[0], names


def _candidates(expr: ast.expr) -> list[Event]:
    """The event types a call site can emit: Event.X, or Event(state) for the queue's
    outcome states."""
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) \
            and expr.value.id == "Event":
        return [Event[expr.attr]]
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) \
            and expr.func.id == "Event":
        return [Event.DELIVERED, Event.DEFERRED, Event.BOUNCED]
    raise AssertionError(f"not an Event: {ast.unparse(expr)}")


def test_every_call_site_names_a_registered_event_with_its_fields():
    calls = list(_emit_calls())
    assert len(calls) > 30
    for where, expr, names in calls:
        for event in _candidates(expr):
            assert event.needed <= names <= event.fields, (where, event, names)


def test_docs_table_matches_the_registry():
    text = (ROOT / "docs" / "EVENTS.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \| ([^|]*)\| ([^|]*)\|", line)
        if m:
            rows[m[1]] = (re.findall(r"`(\w+)`", m[2]), re.findall(r"`(\w+)`", m[3]))
    assert rows == {e.value: (list(e.required), list(e.optional)) for e in Event}


def test_rows_carry_the_address_domain_and_tag_they_are_searched_by():
    rec = _Recorder()
    log = EventLog(rec)
    log.emit(Event.DELIVERED, None, "M1", rcpt="Bob@Remote.Test", remote="mx [127.0.0.1]",
             tls="", reply="250 ok", attempt=1, tag="spring")
    assert rec.keys == ("bob@remote.test", "remote.test", "spring")
    log.emit(Event.ACCEPTED, "S1", "M2", ip="127.0.0.1", size=10, mail_from="a@x.test",
             rcpts=1, local=1, remote=0, account="", tls="", domain="ours.test")
    assert rec.keys == ("a@x.test", "ours.test", None)
    log.emit(Event.IMAP_CONNECT, "S2", ip="127.0.0.1", tls="")
    assert rec.keys == (None, None, None)
