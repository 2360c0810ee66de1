"""A check's report for people (rich: grouped by category, coloured, one line per
finding, the fix and the reason under each warning and failure, a score) and for
programs (`--json`, whose schema is JSON_SCHEMA below and docs/CHECK.md)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from .findings import CATEGORIES, Report, Severity

STYLE = {Severity.PASS: "green", Severity.INFO: "blue", Severity.WARN: "yellow",
         Severity.FAIL: "bold red"}
TITLE = {"dns": "DNS", "smtp": "SMTP", "tls": "TLS", "auth": "AUTH"}
# Score: each finding weighs 1; a pass or info earns it all, a warning half, a
# failure nothing. 100 = nothing to fix.
EARNED = {Severity.PASS: 1.0, Severity.INFO: 1.0, Severity.WARN: 0.5, Severity.FAIL: 0.0}


def score(report: Report) -> int:
    if not report.findings:
        return 100
    return round(100 * sum(EARNED[f.severity] for f in report.findings)
                 / len(report.findings))


def document(report: Report) -> dict:
    """The --json document (JSON_SCHEMA)."""
    return {**report.as_json(), "score": score(report)}


def to_json(report: Report) -> str:
    return json.dumps(document(report), indent=2, ensure_ascii=False)


def render(report: Report, console: Console) -> None:
    console.print(f"[bold]mailwright check {escape(report.target)}[/]  "
                  f"({report.elapsed:.1f} s)")
    for category in CATEGORIES:
        found = [f for f in report.findings if f.category == category]
        if not found:
            continue
        console.print(f"\n[bold underline]{TITLE[category]}[/]")
        for f in found:
            style = STYLE[f.severity]
            console.print(f"  [{style}]{f.severity.label.upper():<4}[/] {escape(f.id)}  "
                          f"{escape(f.subject)}: {escape(f.seen)}")
            if f.severity >= Severity.WARN:
                if f.fix:
                    console.print(f"         fix: {escape(f.fix)}")
                if f.why:
                    console.print(f"         [dim]why: {escape(f.why)}[/]")
    counts = report.counts()
    worst = report.worst
    console.print(f"\n[bold]score {score(report)}/100[/]  "
                  + ", ".join(f"[{STYLE[s]}]{counts[s.label]} {s.label}[/]" for s in Severity)
                  + f"  → [{STYLE[worst]}]{_verdict(worst)}[/]")


def _verdict(worst: Severity) -> str:
    return {Severity.FAIL: "failures: exit 2", Severity.WARN: "warnings: exit 1"}.get(
        worst, "no problems: exit 0")


_SEVERITIES = [s.label for s in Severity]

JSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mailwright check report",
    "type": "object",
    "required": ["target", "started", "elapsed", "worst", "exit_status", "counts", "score",
                 "findings"],
    "additionalProperties": False,
    "properties": {
        "target": {"type": "string", "description": "the domain, or HOST:PORT"},
        "started": {"type": "number", "description": "unix time the check began"},
        "elapsed": {"type": "number", "description": "seconds it took"},
        "worst": {"enum": _SEVERITIES, "description": "the worst severity found"},
        "exit_status": {"enum": [0, 1, 2],
                        "description": "0 pass/info, 1 warnings, 2 failures"},
        "counts": {"type": "object", "required": _SEVERITIES, "additionalProperties": False,
                   "properties": {s: {"type": "integer", "minimum": 0}
                                  for s in _SEVERITIES}},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "findings": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "category", "severity", "subject", "seen", "why", "fix"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": "^(dns|smtp|tls|auth)(\\.[a-z0-9_-]+)+$",
                       "description": "stable; docs/CHECK.md lists every one"},
                "category": {"enum": list(CATEGORIES)},
                "severity": {"enum": _SEVERITIES},
                "subject": {"type": "string",
                            "description": "what was probed: a domain, DNS name, host, IP"},
                "seen": {"type": "string", "description": "what was observed"},
                "why": {"type": "string", "description": "why it matters, with the RFC"},
                "fix": {"type": "string", "description": "how to fix it ('' for a pass)"},
            }}},
    },
}
