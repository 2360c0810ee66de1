"""What `mailwright check TARGET` names: a domain, or one server as HOST[:PORT]
(an IPv6 literal in brackets, "[2001:db8::25]:587")."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..address import AddressError, canonical_domain

DEFAULT_PORT = 25


class TargetError(ValueError):
    """The target cannot be a domain or a server; str() says why."""


@dataclass(frozen=True)
class Target:
    host: str                   # a canonical domain or host name, or an IP address
    is_server: bool             # one server; else a domain, whose MX hosts are probed
    port: int | None = None     # as written; None: --port, else 25

    def label(self, port: int) -> str:
        if not self.is_server:
            return self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port or port}"


def _port(text: str, target: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise TargetError(f"invalid port {text!r} in {target!r}: a number from 1 to 65535")
    return int(text)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def parse_target(text: str) -> Target:
    """A domain ("example.com"), or a server: "mx.example.com:25", "192.0.2.1",
    "[2001:db8::1]:465" (a name with a port, or an address)."""
    raw = text.strip()
    if not raw:
        raise TargetError("no target: give a domain or HOST[:PORT]")
    if raw.startswith("["):
        inside, sep, rest = raw[1:].partition("]")
        ip = _ip(inside)
        if not sep or ip is None or (rest and not rest.startswith(":")):
            raise TargetError(f"invalid target {text!r}: brackets hold an IPv6 address, "
                              "as in [2001:db8::1]:25")
        return Target(ip, True, _port(rest[1:], text) if rest else None)
    ip = _ip(raw)
    if ip is not None:                      # a bare address (IPv6 without a port)
        return Target(ip, True)
    host, sep, port_text = raw.rpartition(":") if ":" in raw else (raw, "", "")
    if sep and ":" in host:
        raise TargetError(f"invalid target {text!r}: write an IPv6 address with a port in "
                          "brackets, [2001:db8::1]:25")
    ip = _ip(host)
    try:
        name = ip or canonical_domain(host)
    except AddressError as e:
        raise TargetError(f"invalid target {text!r}: {e}") from None
    if sep:
        return Target(name, True, _port(port_text, text))
    return Target(name, ip is not None)


def check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise TargetError(f"invalid port {port}: a number from 1 to 65535")
    return port
