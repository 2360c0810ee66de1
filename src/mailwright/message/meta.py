"""Parse a message once, at delivery: what readers need without reading it again.

From the raw octets: the part tree with octet offsets, the header block, the top
header fields, sort keys, the text of address fields a search looks in, and the
decoded text of the whole message (header fields and body) for the full-text
index. Protocol views (IMAP's ENVELOPE and BODYSTRUCTURE) are rendered from these
by their protocol."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import keys
from .addresses import address_text, first_address
from .headers import Headers, decode_words, header_text
from .structure import Part, parse_structure
from .text import body_text, text_size


@dataclass
class MessageMeta:
    structure: Part                 # the part tree; each part's header fields parsed
    headers: Headers                # the top-level header fields
    header: bytes                   # the top-level header block, blank line included
    sent: float | None              # Date:, for sorting by date
    sent_day: int | None            # its date as written, YYYYMMDD
    subject: str                    # decoded
    base_subject: str               # RFC 5256 §2.1, collated (keys.subject_key)
    from_: str                      # what a search of From looks in (address_text)
    to: str
    cc: str
    bcc: str
    sort_from: str                  # RFC 5256 §3: first addr-mailbox, collated
    sort_to: str
    sort_cc: str
    display_from: str               # RFC 5957 §3: first address's display value, collated
    display_to: str
    message_id: str
    in_reply_to: str
    references: str
    header_text: str                # every header field decoded
    # The message, kept until `text` is decoded (parse_message(lazy_text=True)).
    data: bytes | None = field(default=None, repr=False, compare=False)
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The decoded body text (up to body_text's budget)."""
        if self._text is None:
            assert self.data is not None
            self._text = body_text(self.data, self.structure)
            self.data = None           # all the text needed it for
        return self._text

    @property
    def text_size(self) -> int:
        """No fewer characters than `text` has, known without decoding it."""
        return text_size(self.structure)

    def structure_json(self) -> str:
        return json.dumps(self.structure.to_list(), separators=(",", ":"))


def parse_message(data: bytes, lazy_text: bool = False) -> MessageMeta:
    """The parse of a message. Its body text is decoded now, or with lazy_text on
    first use of `text`, the parse keeping the message until then: a delivery whose
    long text the store makes later (store/sqlite/textindex.py DEFERRED_CHARS) is
    then decoded once, and not at all on the way to its acknowledgement."""
    part, headers = parse_structure(data)
    subject = decode_words(headers.value("Subject"))
    first_from = first_address(headers.value("From"))
    first_to = first_address(headers.value("To"))
    date = headers.value("Date")
    meta = MessageMeta(
        structure=part,
        headers=headers,
        header=data[:part.body],
        sent=keys.sent_time(date),
        sent_day=keys.sent_day(date),
        subject=subject,
        base_subject=keys.subject_key(subject),
        from_=address_text(headers.value("From")),
        to=address_text(headers.value("To")),
        cc=address_text(headers.value("Cc")),
        bcc=address_text(headers.value("Bcc")),
        sort_from=keys.mailbox_key(first_from),
        sort_to=keys.mailbox_key(first_to),
        sort_cc=keys.mailbox_key(first_address(headers.value("Cc"))),
        display_from=keys.display_key(first_from),
        display_to=keys.display_key(first_to),
        message_id=headers.value("Message-ID") or "",
        in_reply_to=headers.value("In-Reply-To") or "",
        references=headers.value("References") or "",
        header_text=header_text(headers),
        data=data if lazy_text else None,
    )
    if not lazy_text:
        meta._text = body_text(data, part)
    return meta
