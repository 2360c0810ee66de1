"""The rules of submission (RFC 6409), whoever submits: SMTP's MAIL and RCPT
(smtp/session.py) and the HTTP API's send (admin/send.py) ask these same functions and
word the answers their own way (smtp/replies.py; the API's per-recipient results).

Each rule answers None or a list of targets when it allows, or a `Refused`: an RFC 3463
enhanced status, a text for people, and the `reason` the "rejected" event carries.
The lookups themselves are recipients.py's and quota.py's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ..address import Address
from ..config import CampaignSettings
from ..store.base import MailStore
from ..store.directory import Directory
from . import quota, recipients
from .campaigns import mailto
from .recipients import Target


@dataclass(frozen=True)
class Refused:
    """A sender or a recipient refused; the rest of the submission may go on."""
    status: str          # RFC 3463: class 4 temporary, class 5 permanent
    text: str
    reason: str          # the `reason` of the "rejected" event (docs/EVENTS.md)

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


# RFC 6531 §3.4: a non-ASCII mailbox needs an SMTPUTF8 transaction; 5.6.7 is RFC 6531
# §3.7.4.2's "non-ASCII addresses not permitted for that sender/recipient".
SENDER_NEEDS_SMTPUTF8 = Refused("5.6.7", "Non-ASCII sender address needs the SMTPUTF8 "
                                "parameter", "needs-smtputf8")
RECIPIENT_NEEDS_SMTPUTF8 = Refused("5.6.7", "Non-ASCII recipient address needs SMTPUTF8 on "
                                   "MAIL FROM", "needs-smtputf8")
# RFC 5321 §4.5.3.1.10: too many recipients is temporary (the client sends the rest in
# another transaction); RFC 3463 4.5.3.
TOO_MANY_RECIPIENTS = Refused("4.5.3", "Too many recipients", "too-many-recipients")
RELAY_DENIED = Refused("5.7.1", "Relaying denied", "relay-denied")
NO_SUCH_USER = Refused("5.1.1", "Recipient address rejected: no such user here",
                       "unknown-user")
# RFC 9208 §4, RFC 3463 4.2.2: a full mailbox is a temporary failure.
MAILBOX_FULL = Refused("4.2.2", "Mailbox full; try again later", "over-quota")


def sender_syntax(sender: Address | None, smtputf8: bool) -> Refused | None:
    """May this reverse-path travel in this transaction at all?"""
    if sender is not None and sender.needs_smtputf8 and not smtputf8:
        return SENDER_NEEDS_SMTPUTF8
    return None


async def account_sender(directory: Directory, account: str, sender: Address
                         ) -> Refused | None:
    """May an authenticated account send as `sender` (SMTP submission with
    `[submission] enforce_sender`): its own address or an alias naming it."""
    if await recipients.may_send_as(directory, account, sender):
        return None
    return Refused("5.7.1", f"Sender address rejected: not owned by {account}",
                   "sender-not-owned")


async def domain_sender(directory: Directory, sender: Address,
                        allowed: Collection[str] | None) -> Refused | None:
    """May a sender allowed whole domains (an HTTP API key) send as `sender`: an address
    of a local domain, and of one of `allowed` (canonical names; None: any local one)."""
    if not await directory.is_local_domain(sender.domain):
        return Refused("5.7.1", f"Sender address rejected: {sender.domain} is not a local "
                       "domain", "sender-not-local")
    if allowed is not None and sender.domain not in allowed:
        domains = ", ".join(sorted(allowed)) or "no domain"
        return Refused("5.7.1", f"Sender address rejected: {sender.domain} is not among the "
                       f"domains this sender may use ({domains})", "sender-domain-not-allowed")
    return None


async def recipient(store: MailStore, address: Address, *, smtputf8: bool,
                    authenticated: bool, size: int, count: int, limit: int,
                    campaigns: CampaignSettings | None = None) -> list[Target] | Refused:
    """Where one recipient of a transaction goes (aliases expanded), or why not.

    smtputf8: the transaction is an SMTPUTF8 one; authenticated: the submitter may relay
    to other domains; size: the message size known so far (SMTP's SIZE=, 0 if none),
    for the quota; count: recipients accepted so far, limit: how many may be;
    campaigns: the settings naming the mailto: unsubscribe address (None: not taken)."""
    if address.needs_smtputf8 and not smtputf8:
        return RECIPIENT_NEEDS_SMTPUTF8
    if count >= limit:
        return TOO_MANY_RECIPIENTS
    if campaigns is not None and await mailto.consumes(store, campaigns, address):
        # Reserved in every local domain, before accounts, aliases and catch-alls: no
        # target, so stored nowhere; stages/unsubscribe_mail.py reads it.
        return []
    targets = await recipients.resolve(store, address)
    if targets is None:
        # Not one of our domains: relaying is only for authenticated users.
        if not authenticated:
            return RELAY_DENIED
        targets = [Target(str(address))]
    elif not targets:
        return NO_SUCH_USER
    if await quota.any_over_quota(store, targets, size):
        return MAILBOX_FULL
    return targets
