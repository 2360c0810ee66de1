"""Where the copies of a message go: local mailboxes, or the queue for remote addresses.

The one place that splits resolved recipients (recipients.py Targets) into the two;
the local side, one copy per account and its mailbox, is local.py's. Both the
delivery pipeline's store stage and the queue's DSNs use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..store.messages import LocalCopy
from ..store.queue import RemoteRecipient
from .local import local_copies
from .received import Recipient


@dataclass(frozen=True)
class Destinations:
    local: list[LocalCopy]           # one per account reached
    remote: list[RemoteRecipient]    # one per remote address, compared case-insensitively


def destinations(recipients: Iterable[Recipient]) -> Destinations:
    recipients = list(recipients)
    remote: dict[str, RemoteRecipient] = {}
    for rcpt in recipients:
        for target in rcpt.targets:
            if not target.is_local:
                # RFC 3461 §4: NOTIFY and ORCPT belong to the RCPT the address came from.
                # Of equal addresses the last one's parameters are kept: one queue row each.
                remote[target.address.lower()] = RemoteRecipient(
                    target.address, rcpt.notify, rcpt.orcpt)
    return Destinations(local_copies((r.junk, r.targets) for r in recipients),
                        list(remote.values()))
