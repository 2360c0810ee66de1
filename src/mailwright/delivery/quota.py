"""The quota decision for incoming mail: refuse a recipient at RCPT when the message
would take its mailbox over the limit.

RFC 9208 §4 (and RFC 3463 4.2.2): a full mailbox is a temporary failure, told as
early as possible: at RCPT, with the size MAIL FROM declared (RFC 1870 SIZE=; 0
when none was). The limit itself is the store's (`Quota.exceeded_by`, checked again
by the store when IMAP APPEND/COPY write).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..store.mailboxes import MailboxStore
from .recipients import Target


async def over_quota(store: MailboxStore, account_id: int, size: int) -> bool:
    """Would `size` more octets take the account over its limit?"""
    # Most accounts have no limit: then their usage is not summed at all.
    if not await store.quota_limit(account_id):
        return False
    return (await store.quota(account_id)).exceeded_by(size)


async def any_over_quota(store: MailboxStore, targets: Iterable[Target], size: int) -> bool:
    """Is any local target of one recipient full?"""
    for t in targets:
        if t.account_id is not None and await over_quota(store, t.account_id, size):
            return True
    return False
