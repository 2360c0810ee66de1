"""check/target.py (what TARGET names) and check/report.py (the text report, the JSON
document and its schema, the score)."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest
from rich.console import Console

from mailwright.check.findings import Finding, Report, Severity
from mailwright.check.report import JSON_SCHEMA, document, render, score, to_json
from mailwright.check.target import Target, TargetError, parse_target


@pytest.mark.parametrize("text, host, server, port", [
    ("example.com", "example.com", False, None),
    ("Example.COM.", "example.com", False, None),
    ("bücher.test", "xn--bcher-kva.test", False, None),
    ("mx.example.com:25", "mx.example.com", True, 25),
    ("192.0.2.1", "192.0.2.1", True, None),
    ("192.0.2.1:587", "192.0.2.1", True, 587),
    ("[2001:db8::1]:465", "2001:db8::1", True, 465),
    ("[2001:DB8::1]", "2001:db8::1", True, None),
    ("2001:db8::1", "2001:db8::1", True, None),
])
def test_targets(text, host, server, port):
    assert parse_target(text) == Target(host, server, port)


def test_target_labels():
    assert parse_target("[2001:db8::1]").label(2525) == "[2001:db8::1]:2525"
    assert parse_target("mx.example.com:25").label(2525) == "mx.example.com:25"
    assert parse_target("example.com").label(25) == "example.com"


@pytest.mark.parametrize("text, message", [
    ("", "no target"),
    ("a b", "invalid domain label"),
    ("x.test:99999", "invalid port '99999'"),
    ("x.test:", "invalid port ''"),
    ("x.test:port", "invalid port 'port'"),
    ("[::1", "brackets hold an IPv6 address"),
    ("[nope]:25", "brackets hold an IPv6 address"),
    ("[::1]25", "brackets hold an IPv6 address"),
    ("2001:db8::1:25x", "in brackets"),
    ("a..b", "invalid domain label"),
])
def test_bad_targets(text, message):
    with pytest.raises(TargetError, match=message.replace("[", r"\[")):
        parse_target(text)


def _report(*severities: Severity) -> Report:
    findings = tuple(
        Finding(f"dns.x.n{i}" if i % 2 else f"tls.y.n{i}", s, "example.com",
                f"seen [{i}]", "RFC 0000 §1: because", "" if s < Severity.WARN else f"fix {i}")
        for i, s in enumerate(severities))
    return Report("example.com", findings, 1_700_000_000.0, 0.25)


def test_score_and_exit_status():
    assert score(_report()) == 100 and _report().exit_status == 0
    assert score(_report(Severity.PASS, Severity.INFO)) == 100
    assert score(_report(Severity.PASS, Severity.WARN)) == 75
    assert score(_report(Severity.PASS, Severity.FAIL, Severity.WARN, Severity.PASS)) == 62
    assert _report(Severity.INFO).exit_status == 0
    assert _report(Severity.WARN, Severity.PASS).exit_status == 1
    assert _report(Severity.WARN, Severity.FAIL).exit_status == 2


def test_json_document_follows_the_schema():
    report = _report(Severity.PASS, Severity.INFO, Severity.WARN, Severity.FAIL)
    doc = json.loads(to_json(report))
    jsonschema.validate(doc, JSON_SCHEMA)
    assert doc == document(report)
    assert doc["counts"] == {"pass": 1, "info": 1, "warn": 1, "fail": 1}
    assert doc["findings"][3] == {"id": "dns.x.n3", "category": "dns", "severity": "fail",
                                  "subject": "example.com", "seen": "seen [3]",
                                  "why": "RFC 0000 §1: because", "fix": "fix 3"}
    bad = dict(doc, findings=[dict(doc["findings"][0], id="ftp.nope")])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, JSON_SCHEMA)


def test_text_report_groups_and_explains():
    out = io.StringIO()
    render(_report(Severity.PASS, Severity.FAIL, Severity.WARN, Severity.INFO),
           Console(file=out, width=200, highlight=False))
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0].startswith("mailwright check example.com")
    # DNS before TLS, each finding on one line, fix and why under warn/fail only.
    assert text.index("DNS") < text.index("dns.x.n1") < text.index("TLS") \
        < text.index("tls.y.n0")
    assert "FAIL dns.x.n1  example.com: seen [1]" in text   # markup-like text kept as is
    assert "fix: fix 1" in text and "fix: fix 2" in text and "fix 0" not in text
    assert text.count("why: RFC 0000") == 2
    assert lines[-1].startswith("score 62/100") and "1 fail" in lines[-1] \
        and "exit 2" in lines[-1]
