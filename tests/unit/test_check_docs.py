"""docs/CHECK.md is the reference of `mailwright check`: every finding id the code can
emit is in its tables and every id there is one the code has, and its JSON Schema
block is the one the report is checked against (check/report.py)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from mailwright.check.report import JSON_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "src" / "mailwright" / "check"
DOC = ROOT / "docs" / "CHECK.md"
ID = re.compile(r"(dns|smtp|tls|auth)(\.[a-z0-9_-]+)+")


def ids_in_code() -> set[str]:
    """String constants shaped like a finding id (ids are literals by convention: a
    WHY table's keys, or the first argument of Finding)."""
    found = set()
    for path in CHECK.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and ID.fullmatch(node.value):
                found.add(node.value)
    return found


def ids_in_doc() -> set[str]:
    cells = re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), re.M)
    return {c for c in cells if ID.fullmatch(c)}


def test_every_id_is_documented_and_every_documented_id_exists():
    code, doc = ids_in_code(), ids_in_doc()
    assert len(code) > 60
    assert not code - doc, f"document these ids in docs/CHECK.md: {sorted(code - doc)}"
    assert not doc - code, f"docs/CHECK.md lists ids no code emits: {sorted(doc - code)}"


def test_the_documented_schema_is_the_code_s():
    block = re.search(r"```json\n(.*?)\n```", DOC.read_text(), re.S).group(1)
    assert json.loads(block) == JSON_SCHEMA


def test_every_dns_check_says_why_with_its_rfc():
    import mailwright.check.dns as package
    from mailwright.check.dns import dkim, dmarc, dnssec, mtasts, mx, spf, tlsrpt
    for module in (mx, spf, dkim, dmarc, mtasts, tlsrpt, dnssec, package):
        for id, why in module.WHY.items():
            assert id.startswith("dns.") and len(why) < 200, id
            assert "RFC" in why or id == "dns.bimi.record", id
