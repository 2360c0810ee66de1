"""MTA-STS (RFC 8461): the TXT record, the policy fetched over HTTPS with a verified
certificate (mx/mtasts.py, the fetch the queue runner uses), its mode and max_age,
and whether its mx patterns cover the MX hosts actually published."""

from __future__ import annotations

import re
import ssl

from ...dns import DNSError, NXDomain, Resolver
from ...mx.mtasts import MTASTS, PolicyError, parse_policy, parse_txt
from ..findings import Finding, Severity
from .base import Options, maker

WHY = {
    "dns.mta-sts.record": "RFC 8461 §3.1: one v=STSv1 TXT record with an id at "
                          "_mta-sts.<domain> announces the policy (optional, but without "
                          "it inbound TLS can be stripped)",
    "dns.mta-sts.policy": "RFC 8461 §3.3: senders fetch the policy from https://mta-sts."
                          "<domain>/.well-known/mta-sts.txt and need a valid certificate",
    "dns.mta-sts.mode": "RFC 8461 §5: only mode enforce makes senders refuse unauthenticated "
                        "TLS; testing only reports",
    "dns.mta-sts.mx": "RFC 8461 §4.1: in enforce mode senders use only MX hosts matching the "
                      "policy's mx patterns; mail to the others is deferred",
    "dns.mta-sts.max-age": "RFC 8461 §3.2: senders cache the policy for max_age seconds; "
                           "weeks are recommended so an attacker cannot wait it out",
}
make = maker(WHY)

MIN_MAX_AGE = 86400       # a day; RFC 8461 §3.2 recommends weeks
POLICY_ID = re.compile(r"[A-Za-z0-9]{1,32}")     # RFC 8461 §3.1 sts-id


async def check_mta_sts(resolver: Resolver, domain: str, mx_hosts: list[str],
                        options: Options) -> list[Finding]:
    name = f"_mta-sts.{domain}"
    try:
        texts = [t for t in await resolver.txt(name) if t.startswith("v=STSv1")]
    except NXDomain:
        texts = []
    if not texts:
        return [make("dns.mta-sts.record", Severity.INFO, name, "no MTA-STS policy",
                     "publish one (mailwright dns records prints it) so senders insist on "
                     "TLS to your MX")]
    policy_id = parse_txt(texts)
    if policy_id is None or not POLICY_ID.fullmatch(policy_id):
        return [make("dns.mta-sts.record", Severity.FAIL, name, " | ".join(texts),
                     'publish exactly one "v=STSv1; id=<1-32 letters or digits>"')]
    out = [make("dns.mta-sts.record", Severity.PASS, name, f"id={policy_id}")]
    url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
    fetcher = MTASTS(resolver, options.cafile, options.https_port, timeout=options.timeout)
    try:
        text = await fetcher.fetch(domain)
        policy = parse_policy(text)
    except ssl.SSLCertVerificationError as e:
        return out + [make("dns.mta-sts.policy", Severity.FAIL, url,
                           f"certificate not valid: {e.verify_message}",
                           f"serve mta-sts.{domain} with a certificate from a public CA "
                           "naming that host")]
    except (OSError, ssl.SSLError, TimeoutError, PolicyError, DNSError, ValueError) as e:
        return out + [make("dns.mta-sts.policy", Severity.FAIL, url,
                           f"not fetched: {e.__class__.__name__}: {e}" if str(e)
                           else f"not fetched: {e.__class__.__name__}",
                           "serve the policy (text/plain, HTTP 200, no redirect) at " + url)]
    out.append(make("dns.mta-sts.policy", Severity.PASS, url,
                    f"mode {policy.mode}, mx {', '.join(policy.mx) or '-'}, "
                    f"max_age {policy.max_age}"))
    if policy.mode == "enforce":
        out.append(make("dns.mta-sts.mode", Severity.PASS, url, "mode: enforce"))
    elif policy.mode == "testing":
        out.append(make("dns.mta-sts.mode", Severity.INFO, url,
                        "mode: testing (failures are reported, mail still flows)",
                        "switch to mode: enforce once TLS reports are clean"))
    else:
        out.append(make("dns.mta-sts.mode", Severity.WARN, url,
                        "mode: none (the policy is withdrawn)",
                        "publish mode: enforce, or remove the MTA-STS records"))
    if policy.mode != "none" and mx_hosts:
        unmatched = [h for h in mx_hosts if not policy.allows(h)]
        if unmatched:
            out.append(make("dns.mta-sts.mx", Severity.FAIL if policy.mode == "enforce"
                            else Severity.WARN, url,
                            f"MX {', '.join(unmatched)} not matched by mx: "
                            f"{', '.join(policy.mx)}",
                            "add an mx: line for each MX host, then change the TXT id"))
        else:
            out.append(make("dns.mta-sts.mx", Severity.PASS, url,
                            "every MX host matches an mx pattern"))
    if policy.max_age < MIN_MAX_AGE:
        out.append(make("dns.mta-sts.max-age", Severity.WARN, url,
                        f"max_age {policy.max_age} s (under a day)",
                        "set max_age: 604800 (a week) or more"))
    else:
        out.append(make("dns.mta-sts.max-age", Severity.PASS, url,
                        f"max_age {policy.max_age} s"))
    return out
