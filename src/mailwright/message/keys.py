"""Keys a message is sorted and grouped by, computed once at delivery: the sent date,
the base subject (RFC 5256 §2.1), the first address's mailbox (RFC 5256 §3) or
display value (RFC 5957 §3), compared in the i;unicode-casemap collation (RFC 5051).

They live here, not with IMAP's SORT and THREAD, because they are properties of the
message that the store keeps with it (and that any other reader, a web client's
conversation view say, sorts by the same way)."""

from __future__ import annotations

import datetime
import email.utils
import re
import unicodedata

from .addresses import FirstAddress


def collate(text: str) -> str:
    """RFC 5051 i;unicode-casemap, the collation SORT and THREAD use (RFC 5256 §3):
    titlecase each character, decompose (NFKD); the results compare as octets,
    which for UTF-8 is the order of code points (Python's str order)."""
    if text.isascii():
        return text.upper()
    return unicodedata.normalize("NFKD", "".join(c.title() for c in text))


# RFC 5256 §5: subj-blob = "[" *BLOBCHAR "]" *WSP;
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; subj-leader =
# (*subj-blob subj-refwd) / WSP; subj-trailer = "(fwd)" / WSP. Literals are
# case-insensitive (RFC 5234 §2.3).
_BLOB = r"\[[^\[\]]*\][ \t]*"
_REFWD = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:", re.I)
_BLOB_RE = re.compile(_BLOB)
_FWD_TRAILER = re.compile(r"\(fwd\)$", re.I)


def base_subject(subject: str) -> tuple[str, bool]:
    """RFC 5256 §2.1: the base subject of a decoded Subject, and whether it marks a
    reply or forward (the extraction removed a subj-refwd, a "(fwd)" trailer or a
    "[fwd: ...]" wrapper; RFC 5256 §4, REFERENCES step 5)."""
    # (1) tabs and continuations to a space, runs of spaces to one
    s = re.sub(r"[ \t\r\n]+", " ", subject)
    reply = False
    while True:
        # (2) trailers, repeatedly
        while True:
            if s.endswith((" ", "\t")):
                s = s.rstrip(" \t")
            elif m := _FWD_TRAILER.search(s):
                s = s[:m.start()]
                reply = True
            else:
                break
        # (3)-(5) leaders and leading blobs, until none is left
        while True:
            if s.startswith((" ", "\t")):
                s = s.lstrip(" \t")
            elif m := _REFWD.match(s):
                s = s[m.end():]
                reply = True
            elif (m := _BLOB_RE.match(s)) and s[m.end():]:
                s = s[m.end():]          # only when a non-empty subj-base remains
            else:
                break
        # (6) "[fwd:" ... "]" around the rest: unwrap and start again from (2)
        if s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            reply = True
            continue
        return s, reply


def subject_key(subject: str) -> str:
    """The stored subject sort key: the collated base subject."""
    return collate(base_subject(subject)[0])


def mailbox_key(address: FirstAddress | None) -> str:
    """RFC 5256 §3 FROM / TO / CC: the addr-mailbox of the first address (a group's
    name, when the field starts with a group, RFC 9051 §7.5.2)."""
    return collate(address[1]) if address else ""


def display_key(address: FirstAddress | None) -> str:
    """RFC 5957 §3: the decoded display name if not empty, else mailbox@host, else
    the mailbox, else the empty string."""
    if address is None:
        return ""
    name, mailbox, host = address
    if name.strip():
        return collate(name.strip())
    if mailbox and host:
        return collate(f"{mailbox}@{host}")
    return collate(mailbox)


def sent_time(value: str | None) -> float | None:
    """The Date: field (RFC 5322 §3.3) as a Unix time; None if absent or invalid."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def sent_day(value: str | None) -> int | None:
    """The Date: field's date as written, as YYYYMMDD, its time and zone
    disregarded (as SENTBEFORE, SENTON and SENTSINCE want, RFC 9051 §6.4.4)."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        day = datetime.date(*parsed[:3])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return day.year * 10000 + day.month * 100 + day.day
