"""Email authentication: what we check on mail we receive (SPF, DKIM, DMARC, ARC,
iprev, HELO, sender verification) and what we add to mail we send (DKIM
signatures, ARC seals), plus the DNS records a domain must publish.

pyspf and dkimpy do the cryptography and record grammar; this package wires
them to our own resolver (mailwright.dns, cached by TTL, pointed at a loopback
server in tests) and turns their results into one verdict per message.
"""
