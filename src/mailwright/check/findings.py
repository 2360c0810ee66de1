"""What a check reports: findings, each graded, explained and with a fix.

One shape for every probe (DNS, SMTP, TLS, AUTH), so the human report, `--json`, the
HTTP API and the web admin all render the same list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import IntEnum


class Severity(IntEnum):
    """Ordered: the worst finding decides the exit status."""
    PASS = 0
    INFO = 1
    WARN = 2
    FAIL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


# What `--only` narrows to: each finding belongs to one of these.
CATEGORIES = ("dns", "smtp", "tls", "auth")


@dataclass(frozen=True)
class Finding:
    id: str                 # stable, dotted, category first: "dns.spf.lookups", "smtp.open-relay"
    severity: Severity
    subject: str            # what was probed: a domain, a DNS name, "mx1.example.com:25", an IP
    seen: str               # what was observed, concretely (the record, the reply, the date)
    why: str = ""           # one line: why it matters, with the RFC ("RFC 7208 §4.6.4: ...")
    fix: str = ""           # how to fix it; empty for a pass

    @property
    def category(self) -> str:
        return self.id.partition(".")[0]

    def as_json(self) -> dict:
        data = asdict(self)
        data["severity"] = self.severity.label
        data["category"] = self.category
        return data


@dataclass(frozen=True)
class Report:
    target: str                     # what was asked: "example.com" or "mx.example.com:25"
    findings: tuple[Finding, ...]
    started: float                  # unix time
    elapsed: float                  # seconds

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.PASS)

    @property
    def exit_status(self) -> int:
        """0 pass (info included), 1 warnings, 2 failures."""
        return {Severity.WARN: 1, Severity.FAIL: 2}.get(self.worst, 0)

    def counts(self) -> dict[str, int]:
        return {s.label: sum(1 for f in self.findings if f.severity is s) for s in Severity}

    def only(self, categories: Iterable[str]) -> Report:
        wanted = set(categories)
        return Report(self.target, tuple(f for f in self.findings if f.category in wanted),
                      self.started, self.elapsed)

    def as_json(self) -> dict:
        return {"target": self.target, "started": self.started, "elapsed": self.elapsed,
                "worst": self.worst.label, "exit_status": self.exit_status,
                "counts": self.counts(), "findings": [f.as_json() for f in self.findings]}
