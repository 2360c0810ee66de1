"""The suppression list's rules: whose mail is checked, how addresses compare, and
which recipients a sending domain no longer sends to.

- Only our users' mail to the outside world is checked: messages with an authenticated
  sender (SMTP AUTH, or the HTTP API's envelope sender, `Client.account`), and only
  their remote recipients. Mail from other servers (the mx role), the DSNs we send and
  local copies are never suppressed.
- The sending domain is the domain of that authenticated sender: the `domain` of the
  message's `accepted` event, and the domain whose list applies.
- An entry of the whole domain (campaign None) suppresses every message of the domain;
  an entry of a campaign only the messages tagged with that campaign (the `tag`).
- Addresses compare as lookups do everywhere (address.py `Address.key`): the local part
  case-insensitively, the domain in its canonical form.

The checks run twice: in the submission pipeline (delivery/stages/suppress.py, so the
sender's answer can say so) and in the queue runner before each attempt (an unsubscribe
that arrives while a message waits for a retry still counts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..address import AddressError, parse_mailbox
from ..store.suppressions import SuppressionRecord, SuppressionStore

UNSUBSCRIBE = "unsubscribe"
BOUNCE = "bounce"
COMPLAINT = "complaint"
MANUAL = "manual"
REASONS = (UNSUBSCRIBE, BOUNCE, COMPLAINT, MANUAL)


# A hard bounce: the recipient's server refused the address itself for good. RFC 3463
# §3.2 X.1.1 bad destination mailbox, X.1.2 bad destination system, X.1.3 bad mailbox
# syntax, X.1.6 mailbox moved, RFC 7505 §4.1 X.1.10 null MX; §3.3 X.2.1 mailbox
# disabled. Not X.1.7/X.1.8 (the sender's address), not the policy, content or size
# refusals of X.2.2-X.7.x (another message may pass), not a delivery given up after
# max_age (4.x.x) or returned by an admin (5.0.0).
_HARD_BOUNCE = re.compile(r"5\d\d 5\.(?:1\.(?:1|2|3|6|10)|2\.1)(?:\s|$)")


def lookup_key(address: str) -> str:
    """The form addresses are compared in: local part lowercased, canonical domain. An
    address that does not parse (stored long ago, say) is compared lowercased whole."""
    try:
        return parse_mailbox(address).key
    except AddressError:
        return address.lower()


def sending_domain(account: str | None) -> str | None:
    """The domain whose suppression list applies to a message sent by `account` (the
    authenticated sender); None: not our user's mail, never checked."""
    if not account or "@" not in account:
        return None
    return account.rpartition("@")[2].lower()


async def suppressed(store: SuppressionStore, domain: str, addresses: Iterable[str],
                     campaign: str | None) -> dict[str, SuppressionRecord]:
    """Of `addresses` (as given), those the domain suppresses for a message of `campaign`
    (None: untagged mail, which only domain-wide entries suppress), each with its entry."""
    keys = {a: lookup_key(a) for a in addresses}
    if not keys:
        return {}
    found = await store.suppressed(domain, keys.values(), campaign)
    return {a: found[key] for a, key in keys.items() if key in found}


def is_hard_bounce(reply: str) -> bool:
    """Does this final reply ("550 5.1.1 no such user") say the address is dead?"""
    return _HARD_BOUNCE.match(reply) is not None


async def add(store: SuppressionStore, domain: str, address: str, *, campaign: str | None,
              reason: str, source: str, created: float) -> tuple[SuppressionRecord, bool]:
    """Suppress `address` (any form; kept as given) for the canonical `domain`, for
    `campaign` or all its mail; the entry there now, and whether this added it."""
    return await store.add_suppression(domain, address, lookup_key(address), campaign,
                                       reason, source, created)
