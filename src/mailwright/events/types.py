"""The registry of event types: every event Mailwright records, and the fields it carries.

An event is one log line (`event=<name> session=... msgid=... key=value ...`) and one
row of the events table (ts, type, session, message_id, data as JSON). Its name is the
member's value; `required` fields are always in `data`, `optional` ones only where the
emitting step knows them. docs/EVENTS.md is the table for readers of logs; a unit test
keeps the two the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Event(StrEnum):
    """One member per event type; `EventLog.emit` refuses names not listed here."""

    required: tuple[str, ...]      # in the order the log line shows them
    optional: tuple[str, ...]
    needed: frozenset[str]
    fields: frozenset[str]         # required and optional
    doc: str

    def __new__(cls, name: str, required: str, optional: str, doc: str) -> Event:
        member = str.__new__(cls, name)
        member._value_ = name
        member.required = tuple(required.split())
        member.optional = tuple(optional.split())
        member.needed = frozenset(member.required)
        member.fields = member.needed | frozenset(member.optional)
        member.doc = doc
        return member

    # --- any listener -----------------------------------------------------------
    REFUSED = ("refused", "ip role reason", "",
               "a connection refused by the connection limits (total or per IP)")
    STARTTLS = ("starttls", "version cipher", "",
                "a session (SMTP, IMAP or POP3) switched to TLS")
    AUTH_OK = ("auth-ok", "ip account protocol", "mechanism",
               "a client authenticated (protocol smtp, imap, pop3, or web: a web admin "
               "login, account the admin's name)")
    AUTH_FAIL = ("auth-fail", "ip protocol mechanism username", "",
                 "an authentication failed (wrong credentials or malformed exchange)")
    AUTH_LOCKED = ("auth-locked", "ip protocol seconds", "",
                   "authentication refused: the IP is locked out for `seconds` more")
    STORE_ERROR = ("store-error", "error", "",
                   "a store write failed; the client got a temporary failure")

    # --- SMTP -------------------------------------------------------------------
    SMTP_CONNECT = ("smtp-connect", "ip role tls", "",
                    "an SMTP connection was greeted (tls: version, '' for plaintext)")
    SMTP_DISCONNECT = ("smtp-disconnect", "ip accepted errors", "",
                       "an SMTP connection ended: messages accepted, errors counted")
    TOO_MANY_ERRORS = ("too-many-errors", "ip", "",
                       "an SMTP session closed after too many bad commands")
    TIMEOUT = ("timeout", "ip", "", "an SMTP session idle too long was closed (421)")
    SENDER_REJECTED = ("sender-rejected", "account mail_from", "",
                       "MAIL FROM an address the authenticated account may not use")
    REJECTED = ("rejected", "reason", "code status ip rcpt mail_from",
                "a recipient or message refused: over SMTP with reply `code`, through the "
                "HTTP API with RFC 3463 `status`")
    ACCEPTED = ("accepted", "ip size mail_from rcpts local remote account tls",
                "domain tag role",
                "a message stored and/or queued; the 250 reply follows (domain: whose mail "
                "it is, the account's or the first recipient's; role: the listener's)")
    CHECK_ERROR = ("check-error", "error", "",
                   "inbound checks (SPF/DKIM/DMARC/ARC) raised; the message is delivered "
                   "untagged")
    AUTH_CHECKS = ("auth-checks", "ip mail_from failed action", "",
                   "inbound checks failed: the action taken (reject, quarantine, tag)")

    # --- IMAP -------------------------------------------------------------------
    IMAP_CONNECT = ("imap-connect", "ip tls", "", "an IMAP connection was greeted")
    IMAP_DISCONNECT = ("imap-disconnect", "ip account", "", "an IMAP connection ended")
    IMAP_ID = ("imap-id", "client", "", "the client's ID fields (RFC 2971)")
    IMAP_SELECT = ("imap-select", "account mailbox", "", "a mailbox was selected or examined")
    IMAP_APPEND = ("imap-append", "account mailbox count", "", "messages were appended")

    # --- POP3 -------------------------------------------------------------------
    POP3_CONNECT = ("pop3-connect", "ip tls", "", "a POP3 connection was greeted")
    POP3_DISCONNECT = ("pop3-disconnect", "ip account", "", "a POP3 connection ended")
    POP3_UPDATE = ("pop3-update", "account deleted retrieved", "",
                   "the UPDATE state (RFC 1939 §6) removed `deleted` messages")
    POP3_EXPIRED = ("pop3-expired", "removed", "",
                    "downloaded messages removed by the EXPIRE policy (RFC 2449 §6.7)")

    # --- outbound queue ---------------------------------------------------------
    DELIVERED = ("delivered", "rcpt remote tls reply attempt", "tag delay domain",
                 "a queued recipient was accepted by the remote host (delay: seconds "
                 "since the message was queued; domain: the sender's)")
    DEFERRED = ("deferred", "rcpt remote tls reply attempt", "tag delay domain",
                "a delivery attempt failed temporarily; it is retried later")
    BOUNCED = ("bounced", "rcpt remote tls reply attempt", "tag delay domain",
               "a queued recipient failed permanently (or gave up after max_age)")
    DSN = ("dsn", "to actions", "", "a delivery status notification (RFC 3464) was sent")
    MTA_STS_TESTING = ("mta-sts-testing", "domain unmatched", "",
                       "MX hosts outside a testing-mode MTA-STS policy were used (RFC 8461)")
    COMPLAINED = ("complained", "rcpt domain type suppressed", "",
                  "a feedback report (ARF, RFC 5965) came to [campaigns] feedback_address: "
                  "`rcpt` complained of mail of the sending `domain` (type: abuse, fraud, "
                  "...); suppressed: whether that put it on the domain's suppression list")
    SUPPRESSED = ("suppressed", "rcpt domain reason stage", "tag",
                  "a recipient of our user's mail was not sent to: the sending `domain` "
                  "suppresses it (reason: unsubscribe, bounce, complaint, manual; stage: "
                  "submission, or queue when the entry came while the message waited)")

    # --- campaigns (issue 17) ---------------------------------------------------
    TRACKING_SKIPPED = ("tracking-skipped", "reason domain", "tag",
                        "a campaign message sent without open/click tracking (reason: "
                        "no-html, charset, encoding, malformed-html); it still has "
                        "List-Unsubscribe")
    OPENED = ("opened", "rcpt domain first machine ua", "tag",
              "a campaign copy's pixel was loaded (first: the first open of this recipient "
              "of this message; machine: a proxy or scanner, not the recipient; ua: the "
              "user-agent class)")
    CLICKED = ("clicked", "rcpt domain url first machine ua", "tag",
               "a campaign copy's link was followed (url: the original; first: the first "
               "click of this recipient of this message)")
    UNSUBSCRIBED = ("unsubscribed", "rcpt domain method", "tag",
                    "a campaign recipient unsubscribed (method: one-click, page, mailto)")
    UNSUBSCRIBE_IGNORED = ("unsubscribe-ignored", "rcpt reason", "",
                           "mail to the mailto: unsubscribe address `rcpt` unsubscribed "
                           "nobody (reason: no-token, invalid-token, domain-gone); it was "
                           "accepted and stored nowhere")

    # --- housekeeping -----------------------------------------------------------
    EVENTS_PRUNED = ("events-pruned", "events messages", "",
                     "the pruner deleted `events` rows past their retention and `messages` "
                     "(finished outbound texts) past message_retention_days")
    CERTIFICATE_ISSUED = ("certificate-issued", "names reason issuer serial not_after", "",
                          "an ACME CA issued the server certificate (reason: missing, names, "
                          "renewal or forced); new TLS handshakes use it")
    CERTIFICATE_RENEWAL_FAILED = ("certificate-renewal-failed", "names reason error directory",
                                  "kept_until",
                                  "an ACME issuance failed; the certificate in use (valid "
                                  "until kept_until) stays, the next check tries again")

    # --- webhooks ---------------------------------------------------------------
    WEBHOOK_DISABLED = ("webhook-disabled", "webhook url failures", "domain",
                        "a webhook endpoint was disabled after `failures` consecutive "
                        "failed deliveries (domain: the endpoint's, '' for a global one)")


class EventSchemaError(TypeError):
    """An event emitted with fields its registry entry does not declare: a bug, like
    a wrong keyword argument."""


def check_fields(event: Event, fields: Iterable[str]) -> None:
    """Raise EventSchemaError unless `fields` has every required field and no undeclared one."""
    if event.needed.issubset(fields) and event.fields.issuperset(fields):
        return
    given = set(fields)
    problems = []
    if missing := event.needed - given:
        problems.append(f"missing {sorted(missing)}")
    if unknown := given - event.fields:
        problems.append(f"undeclared {sorted(unknown)}")
    raise EventSchemaError(f"event {event}: {'; '.join(problems)}")
