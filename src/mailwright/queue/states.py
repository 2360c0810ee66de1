"""A queued recipient's states, and when its message is done with.

pending -> delivered | deferred (retried at next_attempt) | bounced | held (by the
admin, until released) | suppressed (the sending domain's suppression list named it
before an attempt: not sent, no DSN). The store keeps each recipient's state; these rules are
the runner's: a message leaves the queue, with its blob, once every recipient has a
final state (RFC 5321 §4.5.4.1: retried until delivered or given up and reported,
RFC 3464), in the same transaction as the outcome that made it so.
"""

from __future__ import annotations

PENDING = "pending"
DEFERRED = "deferred"
DELIVERED = "delivered"
BOUNCED = "bounced"
HELD = "held"
SUPPRESSED = "suppressed"

FINAL = frozenset({DELIVERED, BOUNCED, SUPPRESSED})
ALL = (PENDING, DEFERRED, HELD, DELIVERED, BOUNCED, SUPPRESSED)
