"""The seed corpus, taken from the unit tests: `python -m fuzz.seeds DIR` writes
DIR/<target>/<n> for every target.

A test function's commands (the string arguments of its .cmd() / .send() calls, in
order) make one session script for the smtp, imap and pop3 targets, under a few
variants (role, TLS, logged in); the framers get the unit tests' byte strings; the
MIME builder the messages in them (constants that have a header and a body)."""

from __future__ import annotations

import ast
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "tests" / "unit"
SOURCES = {
    "smtp": ["test_session.py", "test_fuzz.py"],
    "imap": ["test_imap_session.py", "test_imap_parser.py", "test_imap_search_sort.py"],
    "pop3": ["test_pop3_session.py"],
    "framers": ["test_framing.py", "test_imap_parser.py"],
    "mime": ["test_message.py", "test_imap_sections.py", "test_imap_views.py"],
}
# variant octets (targets.split): smtp mx/plain + EHLO, submission + TLS; imap TLS and
# logged in and selected; pop3 TLS and logged in; framers all four framers.
VARIANTS = {"smtp": [0x08, 0x0D], "imap": [0x07, 0x01], "pop3": [0x03, 0x01],
            "framers": [0, 1, 2, 3], "mime": []}


def _constants(node: ast.AST) -> Iterator[bytes]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str | bytes):
            value = sub.value
            yield value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def _session_script(function: ast.FunctionDef) -> bytes:
    out = []
    for sub in ast.walk(function):
        if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                and sub.func.attr in ("cmd", "send") and sub.args):
            for value in _constants(sub.args[0]):
                out.append(value + b"\r\n" if sub.func.attr == "cmd" else value)
    return b"".join(out)


def inputs(target: str) -> Iterator[bytes]:
    for name in SOURCES[target]:
        tree = ast.parse((UNIT / name).read_text())
        if target in ("smtp", "imap", "pop3"):
            for function in ast.walk(tree):
                if isinstance(function, ast.FunctionDef) and (script := _session_script(
                        function)):
                    for variant in VARIANTS[target]:
                        yield bytes([variant, 63]) + script
        elif target == "framers":
            for value in _constants(tree):
                for variant in VARIANTS[target]:
                    yield bytes([variant, 7]) + value
        else:
            for value in _constants(tree):
                if b":" in value and (b"\r\n\r\n" in value or b"\n\n" in value):
                    yield value


def write(directory: Path) -> dict[str, int]:
    counts = {}
    for target in SOURCES:
        out = directory / target
        out.mkdir(parents=True, exist_ok=True)
        seen = set()
        for data in inputs(target):
            name = hashlib.sha1(data).hexdigest()
            if name not in seen:
                seen.add(name)
                (out / name).write_bytes(data)
        counts[target] = len(seen)
    return counts


if __name__ == "__main__":
    for target, count in write(Path(sys.argv[1] if len(sys.argv) > 1 else "var/fuzz")).items():
        print(f"{target}: {count} seed inputs")
