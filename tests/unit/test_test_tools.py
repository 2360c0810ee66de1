"""The test harness itself: port allocation and the tool capability check."""

import os
import socket
import subprocess
import textwrap

from ..conftest import ROOT, PortAllocator, _ephemeral_low, free_port

SCRIPT = ROOT / "scripts" / "install-test-deps.sh"


def test_free_port_never_hands_out_a_port_twice():
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    # below the kernel's ephemeral range: no outgoing connection takes one meanwhile
    assert all(PortAllocator.FIRST <= p < _ephemeral_low() for p in ports)


def test_free_port_skips_a_port_in_use():
    allocator = PortAllocator()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", allocator.ports[allocator.next % len(allocator.ports)]))
        busy.listen()
        assert allocator.take("127.0.0.1") != busy.getsockname()[1]


def check(tmp_path, **fakes: str) -> subprocess.CompletedProcess:
    """Run the capability check with fake tools first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in fakes.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
        path.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    return subprocess.run(["bash", str(SCRIPT), "--check"], capture_output=True, text=True,
                          env=env, timeout=60)


def test_swaks_without_tls_is_named_with_its_packages(tmp_path):
    # what `swaks --support` says when Net::SSLeay is missing
    res = check(tmp_path, swaks="""\
        echo "=== Basic AUTH supported"
        echo "*** TLS not available: requires Net::SSLeay"
        """)
    assert res.returncode == 1
    [line] = res.stdout.splitlines()
    assert line.startswith("missing: swaks: STARTTLS and implicit TLS")
    assert "libnet-ssleay-perl" in line and "libio-socket-ssl-perl" in line


def test_curl_without_imap_and_msmtp_without_tls_are_named(tmp_path):
    res = check(tmp_path, curl="""\
        echo "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1"
        echo "Protocols: file http https pop3 pop3s smtp smtps"
        echo "Features: IPv6 Largefile SSL"
        """, msmtp="""\
        echo "msmtp version 1.8.23"
        echo "TLS/SSL library: none"
        echo "Supported authentication methods:"
        echo "plain scram-sha-256 login"
        """)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert any(line.startswith("missing: curl: smtp(s), imap(s) and pop3(s) over TLS")
               and line.endswith("Debian packages: curl") for line in lines), lines
    assert any(line.startswith("missing: msmtp: TLS") for line in lines), lines
    assert len(lines) == 2
