"""Search semantics both backends share (RFC 9051 §6.4.4): how texts are folded for
substring matching, HEADER matched on a stored header block, a contains-pattern for
SQL LIKE, where a day starts; the search columns of message_meta."""

from __future__ import annotations

import datetime
import re
import unicodedata

from ..message.headers import field_matches

# Combining diacritical marks (the blocks for Latin, Greek, Cyrillic and symbols).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """What the text index holds and is asked for: case folded (SEARCH matching is
    case-insensitive, RFC 9051 §6.4.4) and diacritics taken off, so "cafe" finds
    "Café" (flexible matching, which RFC 9051 allows for TEXT and BODY). Composed
    again afterwards (NFC), so letters that decompose without marks (Hangul) are
    stored as written."""
    if text.isascii():
        return text.lower()
    bare = _MARKS.sub("", unicodedata.normalize("NFKD", text.casefold()))
    return unicodedata.normalize("NFC", bare)


def header_match(header: bytes | None, field: str, text: str) -> bool:
    """SEARCH HEADER field text (RFC 9051 §6.4.4): a substring of that field's
    decoded value, case-insensitively; an empty text matches any such field."""
    return header is not None and field_matches(header, field, text)


# SEARCH FROM/TO/CC/BCC/SUBJECT: message_meta's decoded columns (as `x`), in both schemas.
HEADER_COLUMNS = {"from": "x.from_", "to": "x.to_", "cc": "x.cc", "bcc": "x.bcc",
                  "subject": "x.subject"}


def like_contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards escaped with a backslash."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


# Both text indexes are of trigrams over folded text (`fold`): SQLite's FTS5 trigram
# tokenizer, PostgreSQL's pg_trgm. A string of three or more characters selects the
# rows holding all of its trigrams, and a substring test on the text keeps those that
# hold the string itself: SEARCH matches substrings (RFC 9051 §6.4.4). A shorter
# string has no trigram to look up: the rows are scanned.
TRIGRAM = 3


def day_start(day: datetime.date) -> float:
    """The first second of a day in the server's zone (the zone INTERNALDATE is
    shown in, render.date_time)."""
    return datetime.datetime(day.year, day.month, day.day).timestamp()
