"""DANE (RFC 7672) end to end: DNSSEC-signed test zones served by the loopback DNS
server, validated by a local unbound (Debian), TLSA checked against a real peer."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import shutil
import subprocess
import time

import dns.dnssec
import dns.zone
import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailwright.dns import Resolver
from mailwright.events.log import EventLog
from mailwright.mx import dane
from mailwright.queue.runner import QueueRunner

from ..conftest import free_port
from ..dnsserver import DNSServer
from .session_harness import make_config
from .test_mx_mtasts import LoopbackCA
from .test_queue import Clock, Peer, enqueue, home_store

ZONE = """$TTL 300
@      IN SOA ns.{d}. h.{d}. 1 3600 600 86400 300
@      IN NS  ns.{d}.
@      IN MX  10 mx.{d}.
ns     IN A   127.0.0.1
mx     IN A   127.0.0.1
_{port}._tcp.mx IN TLSA 3 1 1 {digest}
"""


def signed_zone(domain: str, port: int, digest: str):
    zone = dns.zone.from_text(ZONE.format(d=domain, port=port, digest=digest),
                              origin=domain, relativize=False)
    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(), "ECDSAP256SHA256", flags=257)
    dns.dnssec.sign_zone(zone, keys=[(key, dnskey)], lifetime=86400)
    return zone, f'{domain}. 300 IN DNSKEY {dnskey.to_text()}'


@pytest.fixture(scope="module")
def dane_world(tmp_path_factory):
    if shutil.which("unbound") is None:
        pytest.fail("unbound is not installed: run `make test`, which installs it")
    d = tmp_path_factory.mktemp("dane")
    ca = LoopbackCA(d)
    peer = Peer()
    peer.controller = Controller(peer, hostname="127.0.0.1", port=peer.port,
                                 tls_context=ca.server_context("mx.dane-ok.test"))
    peer.controller.start()
    cert = x509.load_pem_x509_certificate((d / "mx.dane-ok.test.pem").read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    good = hashlib.sha256(spki).hexdigest()
    server = DNSServer()
    anchors = []
    for domain, digest in (("dane-ok.test", good), ("dane-bad.test", "00" * 32)):
        zone, anchor = signed_zone(domain, peer.port, digest)
        server.add_signed_zone(zone)
        anchors.append(anchor)
    server.start()
    port = free_port()
    conf = d / "unbound.conf"
    conf.write_text("server:\n" + "".join(f"  {line}\n" for line in [
        f"interface: 127.0.0.1@{port}", "do-not-query-localhost: no", 'username: ""',
        'chroot: ""', f'directory: "{d}"', f'pidfile: "{d}/unbound.pid"', "use-syslog: no",
        f'logfile: "{d}/unbound.log"', 'module-config: "validator iterator"',
        "access-control: 127.0.0.0/8 allow", 'local-zone: "test." nodefault', "do-ip6: no",
        *(f'trust-anchor: "{a}"' for a in anchors)])
        + "".join(f'stub-zone:\n  name: "{z}"\n  stub-addr: 127.0.0.1@{server.port}\n'
                  for z in ("dane-ok.test", "dane-bad.test")))
    unbound = subprocess.Popen(["unbound", "-d", "-c", str(conf)])
    resolver = Resolver(["127.0.0.1"], port=port, timeout=3)
    deadline = time.monotonic() + 10
    while True:
        try:
            if asyncio.run(resolver.query("dane-ok.test", "MX")).authenticated:
                break
        except Exception:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"unbound did not validate: {(d / 'unbound.log').read_text()[-500:]}")
        time.sleep(0.1)
    yield peer, port, d
    unbound.terminate()
    unbound.wait(10)
    server.stop()
    peer.controller.stop()


def test_tlsa_matching():
    key = ec.generate_private_key(ec.SECP256R1())
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    assert dane.matches(der, (dane.TLSA(3, 1, 1, hashlib.sha256(spki).digest()),))
    assert dane.matches(der, (dane.TLSA(3, 0, 2, hashlib.sha512(der).digest()),))
    assert dane.matches(der, (dane.TLSA(3, 0, 0, der),))
    assert not dane.matches(der, (dane.TLSA(3, 1, 1, b"\0" * 32),))
    assert not dane.matches(der, (dane.TLSA(2, 1, 1, hashlib.sha256(spki).digest()),))


def test_matching_tlsa_delivers_mismatch_defers(tmp_path, dane_world):
    peer, dns_port, _ = dane_world
    store = home_store(tmp_path)
    cfg = make_config()
    cfg = dataclasses.replace(cfg, hostname="mx.home.test", queue=dataclasses.replace(
        cfg.queue, port=peer.port, timeout=5, mta_sts=False))
    clock = Clock()
    runner = QueueRunner(cfg, store, Resolver(["127.0.0.1"], port=dns_port, timeout=3),
                         EventLog(None), clock=clock)
    enqueue(store, clock, ["x@dane-ok.test"])
    bad = enqueue(store, clock, ["y@dane-bad.test"])
    asyncio.run(runner.run_once())
    assert [rcpts for _, rcpts, _ in peer.received] == [["x@dane-ok.test"]]
    [r] = asyncio.run(store.queue_message(bad)).recipients
    assert r.state == "deferred" and "4.7.5" in r.last_reply and "DANE" in r.last_reply
    store.close()
