"""The probes of one SMTP server — SMTP, TLS and AUTH findings (docs/CHECK.md):
greeting and names, EHLO extensions, STARTTLS or implicit TLS, TLS versions, cipher,
certificate, DANE, where AUTH is offered, open relay, VRFY/EXPN, and end-of-data
smuggling. Nothing here ever completes a DATA transaction."""

from .server import server_findings

__all__ = ["server_findings"]
