"""The one family of errors the admin layer raises.

Each says what is wrong and what to do about it, in words fit for an admin. The CLI
prints it and exits 1; the HTTP API (issue 15) maps the kind to a status:
Invalid -> 422, NotFound -> 404, Conflict -> 409, and the finer kinds Forbidden -> 403,
TooLarge -> 413 (both Invalid to a caller that does not tell them apart),
Unavailable -> 503.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..store.base import StoreError


class AdminError(Exception):
    """A refused administrative operation; str() is the message for the admin."""


class Invalid(AdminError):
    """The input can never succeed as given (bad syntax, out of range)."""


class NotFound(AdminError):
    """The input names a domain, account, alias, key set or message that does not exist."""


class Conflict(AdminError):
    """The operation clashes with what exists (already there, still in use)."""


class Forbidden(Invalid):
    """The caller may not do this (send as an address outside the domains it may use)."""


class TooLarge(Invalid):
    """The input is over a configured size limit."""


class Unavailable(AdminError):
    """Cannot be done here or now (no delivery pipeline in this process, the store
    failed); the same request may succeed later or elsewhere."""


@contextlib.contextmanager
def store_refusals() -> Iterator[None]:
    """A change the store refuses once our own checks have passed clashes with the state
    it found inside its transaction (already exists, still in use, changed meanwhile)."""
    try:
        yield
    except StoreError as e:
        raise Conflict(str(e)) from None
