"""The ValiMail ARC test suite (tests/data/arc): every validation case through our
code path (mailwright.trust.arc with keys served by the loopback DNS server), and
the signing cases' keys used to check that what we seal validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailwright.trust import arc
from mailwright.trust.dkim import SigningKey

from ..dnsserver import DNSServer
from .loopthread import LoopThread

DATA = Path(__file__).resolve().parent.parent / "data" / "arc"
VALIDATION = list(yaml.safe_load_all((DATA / "arc-draft-validation-tests.yml").read_text()))
SIGNING = list(yaml.safe_load_all((DATA / "arc-draft-sign-tests.yml").read_text()))


def _message(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def _txt(value: str) -> str:
    # YAML folds the long p= values; a key record has no whitespace inside p=.
    return "".join(value.split()) if "p=" in value else value


@pytest.fixture(scope="module")
def loop():
    lt = LoopThread()
    yield lt
    lt.close()


_servers: dict[tuple, DNSServer] = {}


def _server(kind: str, index: int, records: dict) -> DNSServer:
    if (kind, index) not in _servers:
        server = DNSServer()
        server.add_records({name: [("TXT", _txt(v))] for name, v in records.items()})
        _servers[kind, index] = server.start()
    return _servers[kind, index]


CASES = [(i, name) for i, section in enumerate(VALIDATION) for name in section["tests"]]


@pytest.mark.parametrize("section,name", CASES, ids=[n for _, n in CASES])
def test_validation_suite(loop, section, name):
    data = VALIDATION[section]
    case = data["tests"][name]
    bridge = loop.bridge(_server("v", section, data["txt-records"]).port)
    result = arc.verify(bridge, _message(case["message"]))
    expected = (case["cv"] or "").strip().lower() or "fail"
    assert result.result == expected, (case.get("description"), result)


def test_validation_suite_is_complete():
    # 175 cases in the file; four names occur twice in one section, and YAML keeps the
    # second of each (as the suite's own runners do).
    assert len(CASES) == 171


@pytest.mark.parametrize("section", range(len(SIGNING)))
def test_our_seal_validates(loop, section):
    """Seal each signing case's message with the suite's key; validation must pass."""
    data = SIGNING[section]
    bridge = loop.bridge(_server("s", section, data["txt-records"]).port)
    key = SigningKey(data["domain"], data["sel"], "rsa-sha256",
                     data["privatekey"].encode())
    sealed_count = 0
    for name, case in data["tests"].items():
        message = _message(case["message"])
        if b"Authentication-Results: lists.example.org" not in message:
            continue                               # cases about malformed input
        before = arc.verify(bridge, message)
        if before.result == "fail":
            continue
        sealed = arc.seal(message, key, "lists.example.org", int(case.get("t", 12345))) + message
        after = arc.verify(bridge, sealed)
        assert after.result == "pass", (name, after)
        assert after.instances == before.instances + 1
        sealed_count += 1
    assert sealed_count > 0
