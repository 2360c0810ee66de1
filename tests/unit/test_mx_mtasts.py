"""MTA-STS: policy parsing, fetching over real HTTPS from a loopback server with a
test CA, and enforcement in the queue runner against real SMTP peers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import http.server
import ssl
import threading

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailwright.dns import Resolver
from mailwright.events.log import EventLog
from mailwright.mx.mtasts import MTASTS, Policy, PolicyError, parse_policy, parse_txt
from mailwright.queue.runner import QueueRunner

from ..conftest import loopback_dns
from .session_harness import make_config
from .test_queue import Clock, Peer, enqueue, home_store, sender_inbox

POLICY = "version: STSv1\nmode: {mode}\nmx: mx.sts{n}.test\nmx: *.backup.test\nmax_age: 86400\n"


def test_parse_policy_and_txt():
    p = parse_policy(POLICY.format(mode="enforce", n=1))
    assert p.mode == "enforce" and p.max_age == 86400
    assert p.allows("mx.sts1.test") and p.allows("MX.STS1.TEST.")
    assert p.allows("a.backup.test") and not p.allows("a.b.backup.test")
    assert not p.allows("backup.test") and not p.allows("evil.test")
    for bad in ("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n",
                "version: STSv1\nmode: sometimes\nmx: a\nmax_age: 1\n",
                "version: STSv1\nmode: enforce\nmax_age: 1\n",
                "version: STSv1\nmode: enforce\nmx: a\n", "garbage"):
        with pytest.raises(PolicyError):
            parse_policy(bad)
    assert parse_txt(["v=STSv1; id=2026112901;"]) == "2026112901"
    assert parse_txt(["v=STSv1; id=1", "v=STSv1; id=2"]) is None      # exactly one
    assert parse_txt(["v=spf1 -all"]) is None


class LoopbackCA:
    def __init__(self, directory):
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailwright Test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.path = directory / "ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def server_context(self, hostname: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = self.dir / f"{hostname}.pem", self.dir / f"{hostname}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        return ctx


class PolicyServer:
    """HTTPS on loopback answering /.well-known/mta-sts.txt for every mta-sts.* name."""

    def __init__(self, ca: LoopbackCA, hostnames: list[str]):
        self.policies: dict[str, str] = {}
        policies = self.policies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.headers.get("Host", "")
                body = policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        ctx = ca.server_context(hostnames[0])
        # One certificate per name: pick it by SNI.
        contexts = {name: ca.server_context(name) for name in hostnames}
        ctx.sni_callback = lambda sock, name, _: setattr(sock, "context", contexts[name]) \
            if name in contexts else None
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


ZONE = """$TTL 60
@          IN SOA ns.{d}. h.{d}. 1 3600 600 86400 60
@          IN MX  10 mx.{d}.
mx         IN A   127.0.0.1
mta-sts    IN A   127.0.0.1
_mta-sts   IN TXT "v=STSv1; id={id}"
"""


@pytest.fixture(scope="module")
def sts_world(tmp_path_factory):
    d = tmp_path_factory.mktemp("sts")
    ca = LoopbackCA(d)
    dns = loopback_dns()
    for n in (1, 2, 3):
        dns.add_zone(f"sts{n}.test", ZONE.format(d=f"sts{n}.test", id=n))
    server = PolicyServer(ca, [f"mta-sts.sts{n}.test" for n in (1, 2, 3)])
    server.policies["mta-sts.sts1.test"] = POLICY.format(mode="enforce", n=1)
    server.policies["mta-sts.sts2.test"] = POLICY.format(mode="enforce", n=99)    # no match
    server.policies["mta-sts.sts3.test"] = POLICY.format(mode="testing", n=99)
    yield ca, dns, server
    server.server.shutdown()


def test_fetch_and_cache(sts_world):
    ca, dns, server = sts_world
    clock = Clock()
    sts = MTASTS(Resolver(["127.0.0.1"], port=dns.port, timeout=2), str(ca.path),
                 server.port, clock=clock)
    policy = asyncio.run(sts.policy("sts1.test"))
    assert policy == Policy("enforce", ("mx.sts1.test", "*.backup.test"), 86400, "1")
    server.policies["mta-sts.sts1.test"] = "broken"
    assert asyncio.run(sts.policy("sts1.test")) == policy        # cached, id unchanged
    server.policies["mta-sts.sts1.test"] = POLICY.format(mode="enforce", n=1)
    # Without the test CA the HTTPS fetch fails: no policy (and nothing cached).
    untrusting = MTASTS(Resolver(["127.0.0.1"], port=dns.port, timeout=2), "", server.port)
    assert asyncio.run(untrusting.policy("sts1.test")) is None
    assert asyncio.run(sts.policy("peer.test")) is None          # no TXT record


def runner_for(tmp_path, sts_world, smtp_port):
    ca, dns, server = sts_world
    store = home_store(tmp_path)
    cfg = make_config()
    cfg = dataclasses.replace(cfg, hostname="mx.home.test", queue=dataclasses.replace(
        cfg.queue, port=smtp_port, timeout=5, ca_bundle=str(ca.path),
        mta_sts_port=server.port))
    clock = Clock()
    return store, QueueRunner(cfg, store, Resolver(["127.0.0.1"], port=dns.port, timeout=2),
                              EventLog(store), clock=clock), clock


def test_enforce_needs_verified_starttls(tmp_path, sts_world):
    ca = sts_world[0]
    plain = Peer()                                   # no STARTTLS at all
    plain.controller.start()
    try:
        store, runner, clock = runner_for(tmp_path / "a", sts_world, plain.port)
        mid = enqueue(store, clock, ["x@sts1.test"])
        asyncio.run(runner.run_once())
        [r] = asyncio.run(store.queue_message(mid)).recipients
        assert r.state == "deferred" and "4.7.4" in r.last_reply    # never in plaintext
        assert plain.received == []
        store.close()
    finally:
        plain.controller.stop()
    tls_peer = Peer()
    tls_peer.controller = Controller(tls_peer, hostname="127.0.0.1", port=tls_peer.port,
                                     tls_context=ca.server_context("mx.sts1.test"))
    tls_peer.controller.start()
    try:
        store, runner, clock = runner_for(tmp_path / "b", sts_world, tls_peer.port)
        enqueue(store, clock, ["x@sts1.test"])
        asyncio.run(runner.run_once())
        assert [rcpts for _, rcpts, _ in tls_peer.received] == [["x@sts1.test"]]
        assert asyncio.run(store.queue_messages()) == []
        # events are written with the next batch
        store._writer.submit(lambda c: None).result()
        [delivered] = [e for e in asyncio.run(store.events()) if e["type"] == "delivered"]
        assert delivered["tls"].startswith("TLSv1.")    # the TLS used is on record
        store.close()
    finally:
        tls_peer.controller.stop()


def test_enforce_with_unlisted_mx_defers_and_testing_delivers(tmp_path, sts_world):
    peer = Peer()
    peer.controller.start()
    try:
        store, runner, clock = runner_for(tmp_path, sts_world, peer.port)
        mid = enqueue(store, clock, ["x@sts2.test"])
        enqueue(store, clock, ["y@sts3.test"])
        asyncio.run(runner.run_once())
        [r] = asyncio.run(store.queue_message(mid)).recipients
        assert r.state == "deferred" and r.last_reply.startswith("451 4.7.5")
        assert [rcpts for _, rcpts, _ in peer.received] == [["y@sts3.test"]]
        assert sender_inbox(store) == []
        store.close()
    finally:
        peer.controller.stop()
