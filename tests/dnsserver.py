"""A small authoritative DNS server for tests: zone files served over real UDP and TCP
on loopback, so the resolver under test is exercised end to end (never the system's).

    server = DNSServer({"example.test": ZONE_TEXT}).start()
    Resolver(nameservers=["127.0.0.1"], port=server.port)

Names in `servfail` answer SERVFAIL; names in `blackhole` get no answer at all
(a timeout). UDP answers larger than the client allows are truncated (TC), which
makes a client retry over TCP as a real server would.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SPF
import dns.rdtypes.ANY.TXT
import dns.rrset
import dns.zone


class DNSServer:
    def __init__(self, zones: dict[str, str] | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self.servfail: set[str] = set()
        self.blackhole: set[str] = set()
        self.timeout_nodata: set[str] = set()   # time out unless the type has records
        self.queries: list[tuple[str, str]] = []
        for origin, text in (zones or {}).items():
            self.add_zone(origin, text)
        self.port = 0
        self._stop = threading.Event()

    def add_zone(self, origin: str, text: str) -> None:
        zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
        self.zones[zone.origin] = zone

    def add_zone_file(self, path: Path) -> None:
        self.add_zone(path.stem, path.read_text())

    def add_records(self, records: dict[str, list[tuple[str, object]]]) -> None:
        """Serve loose records anywhere in the tree (a test suite's zone data):
        {name: [(type, value), ...]} with value a string, TXT/SPF as a list of
        character-strings, MX as (preference, host); type TIMEOUT makes queries for
        the name's other types time out (the SPF suite's convention).
        Names outside every zone get NXDOMAIN from the root zone these go into."""
        root = self.zones.get(dns.name.root)
        if root is None:
            root = self.zones[dns.name.root] = dns.zone.Zone(dns.name.root, relativize=False)
        for owner, items in records.items():
            try:
                name = dns.name.from_text(owner)
            except dns.exception.DNSException:
                continue                     # e.g. a label over 63 octets: never queried
            for rdtype, value in items:
                if rdtype == "TIMEOUT":
                    self.timeout_nodata.add(name.to_text().lower())
                    continue
                rdata = _rdata(rdtype, value)
                node = root.find_node(name, create=True)
                rdataset = node.find_rdataset(dns.rdataclass.IN, rdata.rdtype, create=True)
                rdataset.add(rdata, ttl=300)

    # --- serving -------------------------------------------------------------
    def start(self) -> DNSServer:
        for _ in range(20):       # find a port free for both UDP and TCP
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((self.host, 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((self.host, self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(16)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            reply = self._handle(wire, udp=True)
            if reply is not None:
                self.udp.sendto(reply, peer)
        self.udp.close()

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._tcp_client, args=(conn,), daemon=True).start()
        self.tcp.close()

    def _tcp_client(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    head = _recv_exact(conn, 2)
                    if not head:
                        return
                    wire = _recv_exact(conn, struct.unpack("!H", head)[0])
                    reply = self._handle(wire, udp=False)
                    if reply is not None:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    # --- answering --------------------------------------------------------------
    def _handle(self, wire: bytes, udp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        question = query.question[0]
        qname = question.name.to_text().lower()
        self.queries.append((qname, dns.rdatatype.to_text(question.rdtype)))
        if qname in self.blackhole:
            return None
        reply = dns.message.make_response(query)
        dnssec = bool(query.ednsflags & dns.flags.DO)
        if qname in self.servfail:
            reply.set_rcode(dns.rcode.SERVFAIL)
        else:
            self._answer(reply, question.name, question.rdtype, dnssec)
            if qname in self.timeout_nodata and not reply.answer:
                return None
        limit = max(512, query.payload) if udp else 65535
        wire = reply.to_wire(max_size=65535)
        if len(wire) > limit:
            reply.answer.clear()
            reply.authority.clear()
            reply.flags |= dns.flags.TC
            wire = reply.to_wire()
        return wire

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        best = None
        for origin, zone in self.zones.items():
            if name.is_subdomain(origin) and (best is None or origin.is_subdomain(best.origin)):
                best = zone
        return best

    def add_signed_zone(self, zone: dns.zone.Zone) -> None:
        """A zone object as built by dns.dnssec.sign_zone (RRSIG, DNSKEY, NSEC included)."""
        self.zones[zone.origin] = zone

    @staticmethod
    def _put(section: list, name: dns.name.Name, node, rdataset, dnssec: bool) -> None:
        section.append(dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset)))
        if dnssec:   # RFC 4035 §3.1.1: the RRSIGs go with the RRset they cover
            sigs = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG,
                                     covers=rdataset.rdtype)
            if sigs is not None:
                section.append(dns.rrset.from_rdata_list(name, sigs.ttl, list(sigs)))

    def _answer(self, reply: dns.message.Message, name: dns.name.Name, rdtype: int,
                dnssec: bool = False) -> None:
        seen = set()
        for _ in range(8):                         # follow CNAMEs inside our zones
            if name in seen:                       # a CNAME loop: the chain so far
                return
            seen.add(name)
            zone = self._zone_for(name)
            if zone is None:
                reply.set_rcode(dns.rcode.REFUSED)
                return
            reply.flags |= dns.flags.AA
            node = zone.get_node(name)
            if node is None:
                below = any(n.is_subdomain(name) for n in zone.nodes)
                if not below:
                    reply.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(reply, zone, dnssec)
                return
            rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if rdataset is not None:
                self._put(reply.answer, name, node, rdataset, dnssec)
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                self._add_soa(reply, zone, dnssec)         # NODATA
                nsec = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC)
                if dnssec and nsec is not None:            # RFC 4035 §3.1.3.1 proof
                    self._put(reply.authority, name, node, nsec, dnssec)
                return
            self._put(reply.answer, name, node, cname, dnssec)
            name = cname[0].target

    @classmethod
    def _add_soa(cls, reply: dns.message.Message, zone: dns.zone.Zone,
                 dnssec: bool = False) -> None:
        node = zone.get_node(zone.origin)
        soa = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA) if node else None
        if soa is not None:
            cls._put(reply.authority, zone.origin, node, soa, dnssec)


def _rdata(rdtype: str, value) -> dns.rdata.Rdata:
    kind = dns.rdatatype.from_text(rdtype)
    if rdtype in ("TXT", "SPF"):
        strings = value if isinstance(value, list) else \
            [value[i:i + 255] for i in range(0, len(value), 255)]   # RFC 1035 §3.3.14
        strings = strings or [""]                                    # no strings: one empty
        cls = dns.rdtypes.ANY.TXT.TXT if rdtype == "TXT" else dns.rdtypes.ANY.SPF.SPF
        return cls(dns.rdataclass.IN, kind,
                   [s.encode() if isinstance(s, str) else s for s in strings])
    if rdtype == "MX":
        preference, host = value
        return dns.rdata.from_text("IN", "MX", f"{preference} {_absolute(host)}")
    if rdtype in ("CNAME", "PTR"):
        return dns.rdata.from_text("IN", rdtype, _absolute(value))
    return dns.rdata.from_text("IN", rdtype, str(value))


def _absolute(host: str) -> str:
    return host if host.endswith(".") else host + "."


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data
