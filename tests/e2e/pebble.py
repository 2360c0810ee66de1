"""Debian's pebble (Let's Encrypt's ACME test CA) on loopback: its own TLS certificate
from a throwaway CA (the Debian package ships none), HTTP-01 validation against the
port of our http listener, names resolved by the loopback DNS server."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from mailwright.net.tls import issue_leaf, make_ca, server_names, write_atomic

from ..conftest import free_port, loopback_dns, require

PEBBLE = "/usr/bin/pebble"


class Pebble:
    def __init__(self, directory: Path, http_port: int):
        require(PEBBLE)
        self.dir = directory
        self.port, self.management = free_port(), free_port()
        self.http_port = http_port
        now = datetime.datetime.now(datetime.UTC)
        names = server_names("localhost", ["127.0.0.1"])
        ca = make_ca(names, now)
        cert, key = issue_leaf(ca, names, now)
        from cryptography.hazmat.primitives import serialization
        pem = serialization.Encoding.PEM
        self.tls_ca = directory / "pebble-tls-ca.pem"
        write_atomic(self.tls_ca, ca[0].public_bytes(pem), 0o644)
        write_atomic(directory / "pebble-cert.pem", cert.public_bytes(pem), 0o644)
        write_atomic(directory / "pebble-key.pem", key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
        (directory / "pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management}",
            "certificate": str(directory / "pebble-cert.pem"),
            "privateKey": str(directory / "pebble-key.pem"),
            "httpPort": http_port,                 # where the VA fetches HTTP-01 answers
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}))
        self.log = directory / "pebble.log"
        self.proc: subprocess.Popen | None = None

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> Pebble:
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1",   # validate at once, not after 0-15 s
                   PEBBLE_WFE_NONCEREJECT="0")          # no deliberate badNonce errors
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [PEBBLE, "-config", str(self.dir / "pebble.json"),
             "-dnsserver", f"127.0.0.1:{loopback_dns().port}"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pebble exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2), \
                        socket.create_connection(("127.0.0.1", self.management), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("pebble did not start listening")

    def root(self) -> str:
        """The root that signs issued certificates (new at every pebble start)."""
        ctx = ssl.create_default_context(cafile=str(self.tls_ca))
        url = f"https://127.0.0.1:{self.management}/roots/0"
        with urllib.request.urlopen(url, context=ctx, timeout=10) as response:
            return response.read().decode("ascii")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            self._log.close()
