"""Two Mailwright instances on distinct loopback addresses, each authoritative for one
domain whose MX the loopback test DNS server serves: mail submitted to the first for
the second's domain crosses between them as it would between two companies."""

from __future__ import annotations

from pathlib import Path

from ..conftest import MailServer, loopback_dns

ZONE = """$TTL 60
@    IN SOA ns.{d}. h.{d}. 1 3600 600 86400 60
@    IN MX  10 mx.{d}.
mx   IN A   {ip}
"""


def relay_pair(tmp_path: Path, sender: tuple[str, str], receiver: tuple[str, str]
               ) -> tuple[MailServer, MailServer]:
    """(domain, ip) of each side; alice@ the sender's domain, bob@ the receiver's. The
    sender's queue delivers to the receiver's mx port from its own address. Not started."""
    (a_domain, a_ip), (b_domain, b_ip) = sender, receiver
    dns = loopback_dns()
    for domain, ip in (sender, receiver):
        dns.add_zone(domain, ZONE.format(d=domain, ip=ip))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    b = MailServer(tmp_path / "b", host=b_ip)
    a = MailServer(tmp_path / "a", host=a_ip,
                   extra=f"[queue]\nport = {b.ports['mx']}\ninterval = 1.0\n"
                         f'source_address = "{a_ip}"\n')
    b.cli("domain", "add", b_domain)
    b.add_user(f"bob@{b_domain}")
    a.cli("domain", "add", a_domain)
    a.add_user(f"alice@{a_domain}")
    return a, b
