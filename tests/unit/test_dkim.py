"""DKIM signing and verification, and interop with OpenDKIM in both directions.
Keys are served by the loopback test DNS server and looked up through our resolver."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mailwright.trust import dkim
from mailwright.trust.dkim import SigningKey
from mailwright.trust.keys import _ed25519_pair, _rsa_pair

from ..dnsserver import DNSServer
from .loopthread import LoopThread

MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: bob@example.org\r\n"
           b"Subject: quarterly figures\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <1@example.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Hello  world \r\nsecond line\r\n\r\n")


@pytest.fixture(scope="module")
def env():
    rsa_private, rsa_txt = _rsa_pair()
    ed_private, ed_txt = _ed25519_pair()
    server = DNSServer()
    server.add_records({
        "s1-rsa._domainkey.example.test": [("TXT", rsa_txt)],
        "s1-ed25519._domainkey.example.test": [("TXT", ed_txt)],
        "two._domainkey.example.test": [("TXT", rsa_txt), ("TXT", "v=DKIM1; p=")],
        "broken._domainkey.example.test": [("TXT", "v=DKIM1; k=rsa; p=!!notbase64!!")],
        "huge._domainkey.example.test": [("TXT", ["x" * 255] * 16)],
    })
    server.servfail.add("failing._domainkey.example.test.")
    server.blackhole.add("slow._domainkey.example.test.")
    server.start()
    loop = LoopThread()
    keys = [SigningKey("example.test", "s1-rsa", "rsa-sha256", rsa_private),
            SigningKey("example.test", "s1-ed25519", "ed25519-sha256", ed_private.strip())]
    yield dict(bridge=loop.bridge(server.port, timeout=0.5), keys=keys, server=server,
               txt={"rsa": rsa_txt, "ed25519": ed_txt})
    loop.close()
    server.stop()


def _results(env, message):
    return [(r.result, r.algorithm) for r in dkim.verify(env["bridge"], message)]


def test_dual_signature_verifies(env):
    signed = dkim.sign(MESSAGE, env["keys"]) + MESSAGE
    assert _results(env, signed) == [("pass", "rsa-sha256"), ("pass", "ed25519-sha256")]
    header = signed.split(b"\r\n\r\n")[0].decode()
    assert "c=relaxed/relaxed" in header
    assert re.search(r"h=from\s*:\s*from", header)            # From oversigned


def test_relaxed_survives_refolding_and_trailing_space(env):
    signed = dkim.sign(MESSAGE, env["keys"]) + MESSAGE
    mangled = signed.replace(b"Subject: quarterly figures", b"Subject:  quarterly\r\n figures")
    mangled = mangled.replace(b"second line\r\n", b"second line   \r\n")
    assert [r for r, _ in _results(env, mangled)] == ["pass", "pass"]


def test_tampering_fails(env):
    signed = dkim.sign(MESSAGE, env["keys"]) + MESSAGE
    tampered = dkim.verify(env["bridge"], signed.replace(b"Hello", b"Jello"))
    assert [r.result for r in tampered] == ["fail", "fail"], tampered
    # A second From added above the signed one: never a pass (oversigning).
    assert {r for r, _ in _results(env, b"From: mallory@evil.test\r\n" + signed)} <= \
        {"fail", "permerror"}


def test_unsigned_message_has_no_results(env):
    assert dkim.verify(env["bridge"], MESSAGE) == []


def _signed_with_selector(env, selector: str) -> bytes:
    key = SigningKey("example.test", selector, "rsa-sha256", env["keys"][0].private_key)
    return dkim.sign(MESSAGE, [key]) + MESSAGE


@pytest.mark.parametrize("selector,result", [
    ("missing", "permerror"),      # NXDOMAIN: no key
    ("broken", "permerror"),       # p= not base64
    ("huge", "permerror"),         # 4 KB TXT answer (over TCP) that is no key record
    ("two", "permerror"),          # two records at the name: ambiguous
    ("failing", "temperror"),      # SERVFAIL
    ("slow", "temperror"),         # no answer at all
])
def test_key_record_problems(env, selector, result):
    assert [r for r, _ in _results(env, _signed_with_selector(env, selector))] == [result]


@pytest.mark.parametrize("mangle", [
    lambda h: h.replace(b"v=1;", b"v=2;"),               # unknown version
    lambda h: re.sub(rb"bh=[^;]+;", b"", h),             # no body hash
    lambda h: h.replace(b"d=example.test", b"d=;;;"),    # tag list syntax
    lambda h: b"DKIM-Signature: garbage\r\n",
    lambda h: re.sub(rb"b=[^;]+$", b"b=AAAA\r\n", h),   # signature of the wrong length
])
def test_malformed_signatures_are_permerror_or_fail(env, mangle):
    header = dkim.sign(MESSAGE, env["keys"][:1])
    results = _results(env, mangle(header) + MESSAGE)
    assert len(results) == 1 and results[0][0] in ("permerror", "fail")


def test_rsa_sha1_is_not_accepted(env):
    header = dkim.sign(MESSAGE, env["keys"][:1]).replace(b"a=rsa-sha256", b"a=rsa-sha1")
    assert _results(env, header + MESSAGE)[0][0] == "permerror"


opendkim = pytest.mark.skipif(shutil.which("opendkim") is None and
                              not os.path.exists("/usr/sbin/opendkim"),
                              reason="opendkim (Debian package) is installed by make test")
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


def _private_dir(tmp_path: Path) -> Path:
    # OpenDKIM refuses files under a world-writable directory (pytest's /tmp).
    d = tmp_path / "od"
    d.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    return d


@opendkim
def test_opendkim_verifies_what_we_sign(env, tmp_path):
    d = _private_dir(tmp_path)
    (d / "signed.eml").write_bytes(dkim.sign(MESSAGE, env["keys"]) + MESSAGE)
    (d / "keys").write_text(
        f"s1-rsa._domainkey.example.test {env['txt']['rsa']}\n"
        f"s1-ed25519._domainkey.example.test {env['txt']['ed25519']}\n")
    (d / "conf").write_text(f"Mode v\nTestDNSData file:{d / 'keys'}\nSyslog no\n"
                            "AlwaysAddARHeader yes\n")
    out = subprocess.run([OPENDKIM, "-x", str(d / "conf"), "-vvv", "-t", str(d / "signed.eml")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    ar = out.stdout + out.stderr
    assert re.search(r"dkim=pass \(2048-bit key\).*header\.s=s1-rsa", ar), ar
    assert re.search(r"dkim=pass .*header\.a=ed25519-sha256 header\.s=s1-ed25519", ar), ar


@opendkim
def test_we_verify_what_opendkim_signs(env, tmp_path):
    d = _private_dir(tmp_path)
    private, txt = _rsa_pair()
    (d / "od.key").write_bytes(private)
    os.chmod(d / "od.key", 0o600)
    plain = (b"From: Carol <carol@example.org>\r\nTo: bob@example.test\r\n"
             b"Subject: signed by opendkim\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
             b"\r\nbody  text \r\n")
    (d / "plain.eml").write_bytes(plain)
    (d / "conf").write_text(
        f"Mode s\nDomain example.org\nSelector od1\nKeyFile {d / 'od.key'}\n"
        "SignatureAlgorithm rsa-sha256\nCanonicalization relaxed/relaxed\nSyslog no\n"
        "RequireSafeKeys false\n")   # pytest's /tmp is world-writable
    out = subprocess.run([OPENDKIM, "-x", str(d / "conf"), "-vvv", "-t", str(d / "plain.eml")],
                         capture_output=True, text=True, timeout=30)
    m = re.search(r"hname='DKIM-Signature' hvalue='([^']*)'", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    header = ("DKIM-Signature: " + m.group(1)).replace("\r\n", "\n").replace("\n", "\r\n")
    env["server"].add_records({"od1._domainkey.example.org": [("TXT", txt)]})
    results = dkim.verify(env["bridge"], header.encode() + b"\r\n" + plain)
    assert [(r.result, r.domain, r.selector) for r in results] == \
        [("pass", "example.org", "od1")]
