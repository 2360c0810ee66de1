"""The one family of errors the admin layer raises.

Each says what is wrong and what to do about it, in words fit for an admin. The CLI
prints it and exits 1; the HTTP API (issue 15) maps the kind to a status:
Invalid -> 422, NotFound -> 404, Conflict -> 409.
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


@contextlib.contextmanager
def store_refusals() -> Iterator[None]:
    """A change the store refuses once our own checks have passed clashes with the state
    it found inside its transaction (already exists, still in use, changed meanwhile)."""
    try:
        yield
    except StoreError as e:
        raise Conflict(str(e)) from None
