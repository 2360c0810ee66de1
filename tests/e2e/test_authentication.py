"""Email authentication end to end: three Mailwright instances on 127.0.0.2/.3/.4 and
zones (MX, SPF, DKIM keys, DMARC, PTR) served by the loopback test DNS server.

A (auth-a.test) signs what alice submits and sends it to B (auth-b.test), which
checks it; B forwards fwd@auth-b.test to carol at C (auth-c.test) with an ARC seal.
Spoofs come straight from 127.0.0.5, which has no PTR and is in no SPF record."""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl

import pytest

from mailwright.trust.keys import txt_strings

from ..conftest import PASSWORD, MailServer, loopback_dns
from .test_relay import wait_for

ZONE = """$TTL 60
@    IN SOA ns.{d}. h.{d}. 1 3600 600 86400 60
@    IN MX  10 mx.{d}.
mx   IN A   {ip}
@    IN TXT "v=spf1 ip4:{ip} -all"
_dmarc IN TXT "v=DMARC1; p={policy}; rua=mailto:postmaster@{d}"
"""


def _dkim_records(server: MailServer, domain: str) -> str:
    store = server.store()
    try:
        keys = asyncio.run(store.dkim_keys(domain))
    finally:
        store.close()
    return "".join(f"{k.selector}._domainkey IN TXT "
                   + " ".join(f'"{s}"' for s in txt_strings(k.txt)) + "\n" for k in keys)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    dns = loopback_dns()
    servers = {}
    for name, ip in (("c", "127.0.0.4"), ("b", "127.0.0.3"), ("a", "127.0.0.2")):
        (base / name).mkdir()
        nxt = servers.get({"a": "b", "b": "c"}.get(name, ""))
        extra = "[queue]\ninterval = 1.0\n" + (
            f'port = {nxt.ports["mx"]}\nsource_address = "{ip}"\n' if nxt else "")
        servers[name] = MailServer(base / name, host=ip, hostname=f"mx.auth-{name}.test",
                                   extra=extra)
    a, b, c = servers["a"], servers["b"], servers["c"]
    for name, srv in servers.items():
        srv.cli("domain", "add", f"auth-{name}.test")
    a.add_user("alice@auth-a.test")
    b.add_user("bob@auth-b.test")
    c.add_user("carol@auth-c.test")
    b.cli("alias", "add", "fwd@auth-b.test", "carol@auth-c.test")
    a.cli("dkim", "generate", "auth-a.test", "--selector", "a1")
    b.cli("dkim", "generate", "auth-b.test", "--selector", "b1")
    for name, ip in (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")):
        dns.add_zone(f"auth-{name}.test",
                     ZONE.format(d=f"auth-{name}.test", ip=ip, policy="reject")
                     + _dkim_records(servers[name], f"auth-{name}.test"))
    # Domains nobody here sends for: a spoof of either must not arrive as genuine.
    dns.add_zone("strict.test", ZONE.format(d="strict.test", ip="127.0.0.9", policy="reject"))
    dns.add_zone("lenient.test", ZONE.format(d="lenient.test", ip="127.0.0.9",
                                             policy="quarantine"))
    for srv in servers.values():
        srv.start()
    yield servers
    for srv in servers.values():
        srv.stop()


def _auth_results(message: bytes) -> str:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    m = re.search(r"^Authentication-Results: (.*?)(?=\r\n\S)", head, re.M | re.S)
    assert m, head
    return " ".join(m.group(1).split())


def _spoof(server: MailServer, mail_from: str, from_header: str, rcpt: str):
    with smtplib.SMTP(server.host, server.ports["mx"], source_address=("127.0.0.5", 0),
                      local_hostname="ghost.auth-c.test", timeout=30) as s:
        s.ehlo("ghost.auth-c.test")
        s.mail(mail_from)
        s.rcpt(rcpt)
        return s.data(f"From: {from_header}\r\nTo: {rcpt}\r\nSubject: urgent wire transfer"
                      f"\r\n\r\nplease pay\r\n".encode())


def test_signed_mail_passes_spf_dkim_dmarc(hosts):
    a, b = hosts["a"], hosts["b"]
    submit_as(a, "bob@auth-b.test", "hello from A")
    [msg] = wait_for(lambda: [m for m in b.inbox("bob@auth-b.test") if b"hello from A" in m])
    results = _auth_results(msg)
    assert results.startswith("mx.auth-b.test;")
    assert "iprev=pass" in results and "policy.iprev=127.0.0.2" in results
    assert "spf=pass smtp.mailfrom=alice@auth-a.test" in results
    assert re.search(r"dkim=pass header\.d=auth-a\.test header\.s=a1-rsa "
                     r"header\.a=rsa-sha256", results), results
    assert re.search(r"dkim=pass header\.d=auth-a\.test header\.s=a1-ed25519", results)
    assert "dmarc=pass" in results and "header.from=auth-a.test" in results
    # DKIM-Signature fields sit below B's trace and A-R, above the original header.
    assert msg.index(b"Authentication-Results:") < msg.index(b"DKIM-Signature:")


def submit_as(server: MailServer, rcpt: str, subject: str) -> None:
    """alice@auth-a.test submits over implicit TLS."""
    ctx = ssl._create_unverified_context()
    with smtplib.SMTP_SSL(server.host, server.ports["submissions"], context=ctx,
                          timeout=30) as s:
        s.login("alice@auth-a.test", PASSWORD)
        s.sendmail("alice@auth-a.test", [rcpt],
                   f"From: Alice <alice@auth-a.test>\r\nTo: {rcpt}\r\n"
                   f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}"
                   f"@auth-a.test>\r\n\r\nbody of {subject}\r\n")


def test_spoof_of_p_reject_domain_is_refused(hosts):
    b = hosts["b"]
    code, text = _spoof(b, "ceo@strict.test", "CEO <ceo@strict.test>", "bob@auth-b.test")
    assert code == 550
    assert text.decode().startswith("5.7.1") and "DMARC" in text.decode()
    assert not [m for m in b.inbox("bob@auth-b.test") if b"ceo@strict.test" in m]


def test_spoof_of_p_quarantine_domain_lands_in_junk(hosts):
    b = hosts["b"]
    code, _ = _spoof(b, "news@lenient.test", "news@lenient.test", "bob@auth-b.test")
    assert code == 250
    [msg] = wait_for(lambda: [m for m in b.inbox("bob@auth-b.test", "Junk")
                              if b"news@lenient.test" in m])
    results = _auth_results(msg)
    assert "dmarc=fail" in results and "spf=fail" in results
    assert "iprev=fail" in results                 # 127.0.0.5 has no PTR
    assert "x-helo=fail" in results
    assert not [m for m in b.inbox("bob@auth-b.test") if b"news@lenient.test" in m]


def test_forged_authentication_results_are_removed(hosts):
    b = hosts["b"]
    with smtplib.SMTP(b.host, b.ports["mx"], source_address=("127.0.0.5", 0),
                      timeout=30) as s:
        s.sendmail("x@example.test", ["bob@auth-b.test"],
                   b"Authentication-Results: mx.auth-b.test; dmarc=pass header.from=x\r\n"
                   b"Authentication-Results: other.example; spf=pass\r\n"
                   b"From: x@example.test\r\nSubject: forged verdict\r\n\r\nhi\r\n")
    [msg] = wait_for(lambda: [m for m in b.inbox("bob@auth-b.test", "Junk")
                              + b.inbox("bob@auth-b.test") if b"forged verdict" in m])
    assert msg.count(b"Authentication-Results: mx.auth-b.test") == 1     # ours only
    assert b"Authentication-Results: other.example; spf=pass" in msg


def test_forward_through_alias_keeps_a_passing_arc_chain(hosts):
    a, c = hosts["a"], hosts["c"]
    submit_as(a, "fwd@auth-b.test", "forward me")
    [msg] = wait_for(lambda: [m for m in c.inbox("carol@auth-c.test")
                              if b"forward me" in m], timeout=30)
    results = _auth_results(msg)
    assert results.startswith("mx.auth-c.test;")
    # At C the forward comes from B's address, so SPF for auth-a.test fails ...
    assert "spf=fail" in results
    # ... but A's signature survives, and B's ARC seal validates.
    assert "dkim=pass header.d=auth-a.test" in results
    assert "dmarc=pass" in results
    assert "arc=pass" in results
    assert b"ARC-Seal: i=1;" in msg and b"d=auth-b.test" in msg
    assert re.search(rb"ARC-Authentication-Results: i=1; mx\.auth-b\.test;", msg)
