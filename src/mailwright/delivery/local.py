"""Local copies: one per account reached, and the mailbox each lands in.

Junk routing: a recipient the inbound checks quarantine (trust/inbound.py:
`Verdict.quarantine_domains` holds its domain) has its copy filed in the account's
Junk mailbox (RFC 6154 \\Junk, created with every account), or in its INBOX if the
user deleted Junk. Everything else goes to the INBOX. An account reached through
several recipients (aliases) gets one copy, in Junk if any of them is quarantined.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..store.messages import INBOX, LocalCopy
from .recipients import Target

JUNK = "Junk"


def mailboxes(quarantined: bool) -> tuple[str, ...]:
    """Where a copy goes, in order of preference: the first the account has."""
    return (JUNK, INBOX) if quarantined else (INBOX,)


def local_copies(recipients: Iterable[tuple[bool, Iterable[Target]]]) -> list[LocalCopy]:
    """The copies for (quarantined, targets) of each recipient: one per account."""
    accounts: dict[int, bool] = {}
    for quarantined, targets in recipients:
        for t in targets:
            if t.account_id is not None:
                accounts[t.account_id] = accounts.get(t.account_id, False) or quarantined
    return [LocalCopy(account, mailboxes(quarantined))
            for account, quarantined in accounts.items()]
