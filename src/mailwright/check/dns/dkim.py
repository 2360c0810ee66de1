"""DKIM public keys (RFC 6376 §3.6.1) at the selectors asked for, or at the
selectors mail providers commonly use when none is given: present, parseable,
strong enough (RFC 8301 §3.2), not in testing mode, and whether revoked."""

from __future__ import annotations

import base64
import binascii

from dkim.crypto import UnparsableKeyError, parse_public_key

from ...dns import NXDomain, Resolver
from ..findings import Finding, Severity
from .base import maker, tags

WHY = {
    "dns.dkim.key": "RFC 6376 §3.6.2: receivers verify DKIM signatures with the key at "
                    "<selector>._domainkey.<domain>; DMARC needs a passing one",
    "dns.dkim.syntax": "RFC 6376 §3.6.1: a key record that cannot be parsed fails every "
                       "signature made with it",
    "dns.dkim.strength": "RFC 8301 §3.2: RSA keys under 1024 bits must not be accepted; "
                         "2048 bits or more are recommended",
    "dns.dkim.testing": "RFC 6376 §3.6.1: t=y says the domain is testing DKIM; receivers "
                        "may treat its signatures as unsigned",
    "dns.dkim.revoked": "RFC 6376 §3.6.1: an empty p= revokes the key; signatures made "
                        "with it fail",
}
make = maker(WHY)

# Selectors seen across large providers and common software (Microsoft 365 uses
# selector1/2, Google "google", many MTAs "default", "dkim", "mail"); Mailwright's own
# are "<name>-rsa" / "<name>-ed25519", which only `--selector` (or the API for a local
# domain, which knows them) can name.
COMMON_SELECTORS = ("default", "dkim", "mail", "selector1", "selector2", "google", "k1",
                    "k2", "s1", "s2", "smtp", "mx", "key1")


async def check_dkim(resolver: Resolver, domain: str,
                     selectors: tuple[str, ...] = ()) -> list[Finding]:
    asked = bool(selectors)
    out: list[Finding] = []
    found = 0
    for selector in selectors or COMMON_SELECTORS:
        name = f"{selector}._domainkey.{domain}"
        try:
            texts = await resolver.txt(name)
        except NXDomain:
            texts = []
        keys = [t for t in texts if "p=" in t or t.startswith("v=DKIM1")]
        if not keys:
            if asked:
                out.append(make("dns.dkim.key", Severity.FAIL, name, "no DKIM key record",
                                f"publish the selector's public key at {name} (TXT)"))
            continue
        found += 1
        if len(keys) > 1:
            out.append(make("dns.dkim.key", Severity.FAIL, name,
                            f"{len(keys)} key records: receivers cannot tell which applies",
                            "keep one TXT record per selector"))
            continue
        out += _check_key(name, keys[0])
    if not asked and not found:
        out.append(make("dns.dkim.key", Severity.WARN, domain,
                        f"no key at the common selectors ({', '.join(COMMON_SELECTORS)})",
                        "sign outgoing mail with DKIM and publish the key; if you do, name "
                        "the selector: --selector NAME"))
    return out


def _check_key(name: str, text: str) -> list[Finding]:
    t = tags(text)
    if "v" in t and (t["v"] != "DKIM1" or not text.lstrip().startswith("v=")):
        return [_bad(name, f"v={t['v']}: must be DKIM1 and come first")]
    kind = t.get("k", "rsa").lower()
    if "p" not in t:
        return [_bad(name, "no p= tag")]
    out = []
    if "y" in [f.strip().lower() for f in t.get("t", "").split(":")]:
        out.append(make("dns.dkim.testing", Severity.WARN, name, f"t={t['t']}",
                        "remove t=y once signing works"))
    material = "".join(t["p"].split())
    if not material:
        return out + [make("dns.dkim.revoked", Severity.INFO, name,
                           "p= is empty: the key is revoked",
                           "remove the record once no mail signed with it is in flight")]
    try:
        raw = base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError):
        return out + [_bad(name, "p= is not base64")]
    if kind == "ed25519":
        if len(raw) != 32:
            return out + [_bad(name, f"an Ed25519 key is 32 octets, not {len(raw)}")]
        return [make("dns.dkim.key", Severity.PASS, name, "Ed25519 key (RFC 8463)"), *out,
                make("dns.dkim.strength", Severity.PASS, name, "Ed25519")]
    if kind != "rsa":
        return out + [_bad(name, f"k={kind}: not rsa or ed25519")]
    try:
        bits = parse_public_key(raw)["modulus"].bit_length()
    except (UnparsableKeyError, KeyError, ValueError, IndexError):
        return out + [_bad(name, "p= does not hold an RSA public key")]
    out.insert(0, make("dns.dkim.key", Severity.PASS, name, f"RSA key, {bits} bits"))
    if bits < 1024:
        out.append(make("dns.dkim.strength", Severity.FAIL, name, f"RSA {bits} bits",
                        "generate a 2048-bit key (mailwright dkim generate) and publish it"))
    elif bits < 2048:
        out.append(make("dns.dkim.strength", Severity.WARN, name, f"RSA {bits} bits",
                        "rotate to a 2048-bit key (mailwright dkim generate)"))
    else:
        out.append(make("dns.dkim.strength", Severity.PASS, name, f"RSA {bits} bits"))
    return out


def _bad(name: str, seen: str) -> Finding:
    return make("dns.dkim.syntax", Severity.FAIL, name, seen,
                "publish the record as the signer printed it: v=DKIM1; k=rsa; p=<base64>")
