"""The administrative operations behind the CLI and the HTTP API: domains, accounts,
aliases, DKIM keys, the queue, DNS records, the event log, POP3 expiry, config check.
See service.py."""

from .errors import AdminError, Conflict, Invalid, NotFound
from .service import Admin

__all__ = ["Admin", "AdminError", "Conflict", "Invalid", "NotFound"]
