"""A message as data (RFC 5322; MIME, RFC 2045-2049), parsed once at delivery and used
by every protocol: the part tree with octet offsets, header fields and their decoding,
the envelope and body-part descriptions, sections, transfer encodings, sort keys and
the text a search looks in.

It knows nothing of SMTP, IMAP, POP3 or the store: a protocol renders what it needs
from these data in its own syntax (imap/fetch.py renders ENVELOPE and BODYSTRUCTURE).
"""
