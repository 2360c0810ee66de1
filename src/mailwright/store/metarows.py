"""A message's parse as its message_meta row, in both backends: the columns, their
values in order, and the version of the parse that made them."""

from __future__ import annotations

from ..message.meta import MessageMeta
from .mailboxes import FetchViews

# What a message's parse stores changes with the parser: message_meta rows carry the
# version that made them, and the start-up backfill parses older rows again.
# 1: Date's day as written, display sort keys, collated sort keys, RFC 5256 base
#    subject, address search text, every header field in the trigram text index.
META_VERSION = 1
META_COLUMNS = ("envelope", "body", "bodystructure", "structure", "header", "sent",
                 "sent_day", "subject", "base_subject", "from_", "to_", "cc", "bcc",
                 "sort_from", "sort_to", "sort_cc", "display_from", "display_to", "msgid",
                 "in_reply_to", "refs", "version")


# A message's parse and the FETCH views rendered from it: what message_meta keeps.
Indexed = tuple[MessageMeta, FetchViews]


def meta_values(indexed: Indexed) -> tuple:
    """The message_meta values of a parse, in META_COLUMNS order."""
    m, v = indexed
    return (v.envelope, v.body, v.bodystructure, m.structure_json(), m.header, m.sent,
            m.sent_day, m.subject, m.base_subject, m.from_, m.to, m.cc, m.bcc, m.sort_from,
            m.sort_to, m.sort_cc, m.display_from, m.display_to, m.message_id,
            m.in_reply_to, m.references, META_VERSION)
