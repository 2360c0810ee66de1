"""The openspf.org RFC 7208 test suite (tests/data/spf), run through our own path:
each section's zone data is served by the loopback test DNS server, and pyspf's
lookups go through mailwright.dns via the Bridge, as they do in the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailwright.trust import spf

from ..dnsserver import DNSServer
from .loopthread import LoopThread

SUITE = Path(__file__).resolve().parent.parent / "data" / "spf" / "rfc7208-tests.yml"
SECTIONS = list(yaml.safe_load_all(SUITE.read_text()))


def _records(zonedata: dict) -> dict:
    """The suite's zone data as DNSServer records. As the suite's README asks of
    drivers, a name with SPF (type 99) records but no TXT ones also gets them as TXT.
    TIMEOUT: queries for types not listed before it time out (the reference driver
    walks the list in order), so nothing after it, generated copies included, answers."""
    out = {}
    for name, items in zonedata.items():
        records, spf_copies, has_txt = [], [], False
        for item in items:
            if item == "TIMEOUT":
                records.append(("TIMEOUT", None))
                spf_copies = []
                break
            (rdtype, value), = item.items()
            if rdtype == "TXT":
                has_txt = True
                if value == "NONE":        # the driver convention for "no TXT record"
                    continue
            elif rdtype == "SPF":
                spf_copies.append(("TXT", value))
            records.append((rdtype, value))
        out[name] = records + ([] if has_txt else spf_copies)
    return out


DEFAULT_EXPLANATION = "SPF fail - not authorized"
CASES = [(i, name) for i, section in enumerate(SECTIONS) for name in section["tests"]]


@pytest.fixture(scope="module")
def loop():
    lt = LoopThread()
    yield lt
    lt.close()


_servers: dict[int, DNSServer] = {}


def _server(section: int) -> DNSServer:
    if section not in _servers:
        server = DNSServer()
        server.add_records(_records(SECTIONS[section]["zonedata"]))
        _servers[section] = server.start()
    return _servers[section]


@pytest.mark.parametrize("section,name", CASES, ids=[n for _, n in CASES])
def test_rfc7208_suite(loop, section, name):
    case = SECTIONS[section]["tests"][name]
    bridge = loop.bridge(_server(section).port, timeout=0.5)
    result = spf.check(bridge, case["host"], case["mailfrom"], case["helo"])
    expected = case["result"] if isinstance(case["result"], list) else [case["result"]]
    assert result.result in expected, (case.get("description"), result)
    if "explanation" in case and result.result == "fail":
        # "DEFAULT" stands for the implementation's own text (RFC 7208 §6.2).
        want = case["explanation"]
        assert result.explanation == (DEFAULT_EXPLANATION if want == "DEFAULT" else want)


def test_suite_is_complete():
    # 16 sections, 203 scenarios in the 2014.04 release: a truncated copy must not pass.
    assert len(SECTIONS) == 16 and len(CASES) == 203
