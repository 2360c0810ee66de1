"""A DNS world for `mailwright check` tests, served on loopback: domains with planted
flaws (each named in a comment with the finding id that must catch it) and an HTTPS
server for MTA-STS policies with a certificate from a test CA."""

from __future__ import annotations

import base64
import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .dnsserver import DNSServer
from .unit.test_mx_mtasts import LoopbackCA, PolicyServer

SOA = "@ IN SOA ns.{d}. h.{d}. 1 3600 600 86400 60\n"


@functools.cache
def dkim_txt(bits: int, flags: str = "") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; {flags}p={base64.b64encode(der).decode()}"


def _txt(value: str) -> str:
    """A TXT rdata in zone-file syntax (strings of at most 255 octets)."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def bad_zone() -> str:
    d = "bad.test"
    return "$TTL 60\n" + SOA.format(d=d) + f"""
; dns.mx.cname: an MX target that is an alias
@           IN MX 10 alias.{d}.
; dns.mx.ip-literal: an MX target that is an address
@           IN MX 20 127.0.0.9.
@           IN MX 30 mx.{d}.
alias       IN CNAME mx.{d}.
; dns.ptr.fcrdns / dns.ptr.match: 127.0.0.11 has PTR other.{d}, which is 127.0.0.12
mx          IN A 127.0.0.11
other       IN A 127.0.0.12
; dns.spf.lookups (12 querying terms through includes), dns.spf.void (4), dns.spf.include
; (nospf has none), dns.spf.all (+all)
@           IN TXT "v=spf1 include:i1.{d} include:i2.{d} include:nospf.{d} +all"
i1          IN TXT "v=spf1 a mx include:i3.{d} -all"
i2          IN TXT "v=spf1 a:mx.{d} mx:{d} exists:mx.{d} -all"
i3          IN TXT "v=spf1 a mx a:mx.{d} -all"
nospf       IN TXT "not an spf record"
; dns.dkim.strength (1024 bits, warn) and dns.dkim.testing (t=y)
weak._domainkey    IN TXT {_txt(dkim_txt(1024, "t=y; "))}
; dns.dkim.revoked
gone._domainkey    IN TXT "v=DKIM1; k=rsa; p="
; dns.dkim.syntax
junk._domainkey    IN TXT "v=DKIM1; k=rsa; p=not*base64"
; no _dmarc record: dns.dmarc.record
; dns.mta-sts.mx: the policy names mx.elsewhere.test only
_mta-sts    IN TXT "v=STSv1; id=20261204"
mta-sts     IN A 127.0.0.1
; dns.tls-rpt.record: two records
_smtp._tls  IN TXT "v=TLSRPTv1; rua=mailto:tls@{d}"
_smtp._tls  IN TXT "v=TLSRPTv1; rua=mailto:tls2@{d}"
; dns.spf.record: two SPF records
two         IN TXT "v=spf1 -all"
two         IN TXT "v=spf1 mx -all"
; dns.spf.void alone: three names that do not exist
void        IN TXT "v=spf1 a:nx1.{d} a:nx2.{d} mx:nx3.{d} -all"
; dns.mx.null: a null MX, alone (info) and beside another MX (fail)
nullmx      IN MX 0 .
mixed       IN MX 0 .
mixed       IN MX 10 mx.{d}.
; dns.mx.present: no MX, mail goes to the A record (warn)
nomx        IN A 127.0.0.11
; dns.dmarc.external: rua to another organisation that did not agree
report      IN MX 10 mx.{d}.
_dmarc.report IN TXT ("v=DMARC1; p=none; pct=50; "
                      "rua=mailto:agg@elsewhere.test,mailto:x@ok.test; ruf=mailto:not-an-address")
"""


def ok_zone() -> str:
    """Authorises report.bad.test's reports to ok.test (RFC 7489 §7.1)."""
    return "$TTL 60\n" + SOA.format(d="ok.test") + \
        'report.bad.test._report._dmarc IN TXT "v=DMARC1"\n'


PTR_ZONE = """$TTL 60
@ IN SOA ns.bad.test. h.bad.test. 1 3600 600 86400 60
11 IN PTR other.bad.test.
"""

BAD_POLICY = "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 3600\n"


class CheckWorld:
    """The DNS server and the MTA-STS policy server; extra zones can be added."""

    def __init__(self, directory):
        self.ca = LoopbackCA(directory)
        self.dns = DNSServer()
        self.dns.add_records({})               # a root zone: other names are NXDOMAIN
        self.dns.add_zone("bad.test", bad_zone())
        self.dns.add_zone("ok.test", ok_zone())
        self.dns.add_zone("0.0.127.in-addr.arpa", PTR_ZONE)
        self.dns.start()
        self.https = PolicyServer(self.ca, ["mta-sts.bad.test", "mta-sts.good.test"])
        self.https.policies["mta-sts.bad.test"] = BAD_POLICY

    def stop(self) -> None:
        self.https.server.shutdown()
        self.dns.stop()
