"""The records that let mail clients find their settings (trust/records.py): only the
configured client listeners become SRV records (RFC 6186, RFC 8314 §5.1), in order of
preference; autoconfig/autodiscover names only with an http listener; and `dns check`
grades them as optional, through a loopback DNS server: found, absent (info) or
elsewhere (warn), none of them a failure."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.admin import Admin, NotFound
from mailwright.admin.dns import DnsCheck
from mailwright.app import open_store
from mailwright.config import parse
from mailwright.dns import Resolver
from mailwright.trust import records

from ..dnsserver import DNSServer

HOST = "mx.example.test"


def config(tmp_path, roles: dict[str, int], dns_port: int = 53):
    listeners = "".join(f'[[listeners]]\nrole = "{role}"\nport = {port}\n'
                        for role, port in roles.items())
    return parse(f'hostname = "{HOST}"\ndata_dir = "{tmp_path}"\n{listeners}'
                 f'[dns]\nnameservers = ["127.0.0.1"]\nport = {dns_port}\ntimeout = 2.0\n')


def test_only_configured_listeners_in_order_of_preference(tmp_path):
    cfg = config(tmp_path, {"mx": 25, "submission": 587, "pop3s": 995, "imaps": 993})
    assert [(s.role, s.port, s.implicit_tls, s.srv, s.priority)
            for s in records.client_services(cfg)] == [
        ("imaps", 993, True, "_imaps._tcp", 0),
        ("pop3s", 995, True, "_pop3s._tcp", 20),
        ("submission", 587, False, "_submission._tcp", 10)]
    made = [(r.name, r.type, r.value) for r in records.client_records(cfg, "example.org")]
    assert made == [("_imaps._tcp.example.org", "SRV", f"0 1 993 {HOST}."),
                    ("_pop3s._tcp.example.org", "SRV", f"20 1 995 {HOST}."),
                    ("_submission._tcp.example.org", "SRV", f"10 1 587 {HOST}.")]
    with_http = config(tmp_path, {"mx": 25, "https": 443})
    assert [(r.name, r.type, r.value)
            for r in records.client_records(with_http, "example.org")] == [
        ("autoconfig.example.org", "CNAME", f"{HOST}."),
        ("autodiscover.example.org", "CNAME", f"{HOST}.")]
    # They are part of what `dns records` prints, after the mail records.
    expected = records.expected(cfg, "example.org", [], 0)
    assert [r.type for r in expected[-3:]] == ["SRV"] * 3


@pytest.fixture
def dns():
    server = DNSServer()
    server.add_records({
        HOST: [("A", "192.0.2.10")],
        "autoconfig.example.org": [("CNAME", HOST)],             # to us
        "autodiscover.example.org": [("A", "192.0.2.10")],       # our address, no CNAME
        "_imaps._tcp.example.org": [("SRV", f"0 1 993 {HOST}.")],
        "_submissions._tcp.example.org": [("SRV", f"0 1 4465 {HOST}.")],     # wrong port
        "_pop3s._tcp.example.org": [("SRV", "0 1 995 pop.elsewhere.test.")],  # elsewhere
    })
    server.start()
    yield server
    server.stop()


def test_optional_records_are_graded_not_failed(tmp_path, dns):
    cfg = config(tmp_path, {"mx": 25, "imaps": 993, "imap": 143, "pop3s": 995,
                            "submissions": 465, "https": 443}, dns.port)
    resolver = Resolver(["127.0.0.1"], dns.port, timeout=2.0)
    found = asyncio.run(records.check(cfg, resolver, "example.org", []))
    graded = {f.what: (f.status, f.detail) for f in found
              if f.what.startswith(("SRV ", "CNAME "))}
    assert graded == {
        "CNAME autoconfig.example.org": ("found", f"{HOST}."),
        "CNAME autodiscover.example.org": ("found", "192.0.2.10"),
        "SRV _imaps._tcp.example.org": ("found", f"0 1 993 {HOST}."),
        "SRV _imap._tcp.example.org": ("info", f"not published (optional): 10 1 143 {HOST}."),
        "SRV _pop3s._tcp.example.org": (
            "warn", f"is 0 1 995 pop.elsewhere.test.; expected 20 1 995 {HOST}."),
        "SRV _submissions._tcp.example.org": (
            "warn", f"is 0 1 4465 {HOST}.; expected 0 1 465 {HOST}."),
    }
    # Only the client records graded: the others' failures alone decide.
    client = [f for f in found if f.what.startswith(("SRV ", "CNAME "))]
    assert not DnsCheck("example.org", client).failed


def test_client_settings_for_local_domains_only(tmp_path):
    cfg = config(tmp_path, {"mx": 25, "imaps": 993, "submission": 587})
    store = open_store(cfg)
    try:
        admin = Admin(store, cfg)
        asyncio.run(admin.domains.add("Example.org"))
        s = asyncio.run(admin.clients.settings(address="Bob@EXAMPLE.org"))
        assert (s.domain, s.address, s.hostname) == ("example.org", "Bob@example.org", HOST)
        assert [x.role for x in s.of("imap")] == ["imaps"] and s.of("pop3") == ()
        assert asyncio.run(admin.clients.settings(domain="example.org")).address is None
        with pytest.raises(NotFound, match="not a local domain"):
            asyncio.run(admin.clients.settings(address="a@example.net"))
    finally:
        store.close()
