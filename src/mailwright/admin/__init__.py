"""The administrative operations behind the CLI and the HTTP API: domains, accounts,
aliases, DKIM keys, the queue, DNS records, the event log, webhooks, API keys, POP3
expiry, config check, sending a message (send.py). See service.py."""

from .errors import AdminError, Conflict, Forbidden, Invalid, NotFound, TooLarge, Unavailable
from .service import Admin

__all__ = ["Admin", "AdminError", "Conflict", "Forbidden", "Invalid", "NotFound", "TooLarge",
           "Unavailable"]
