"""SEARCH keys (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 MODSEQ) as a small tree.

Key = ("all",) | ("and", [Key]) | ("or", Key, Key) | ("not", Key)
    | ("flag", flag, present) | ("seq", SequenceSet) | ("uid", SequenceSet)
    | ("recent",) | ("header", field, text) | ("text", text) | ("body", text)
    | ("internaldate" | "sent", "before" | "on" | "since", date)
    | ("larger" | "smaller", n) | ("modseq", n) | ("older" | "younger", seconds)

The session turns "seq" and "recent" into UID sets; the store turns the rest
into its query language.
"""

from __future__ import annotations

from .parser import ParseError, Reader

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True), "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False), "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_KEYS = {
    "BEFORE": ("internaldate", "before"), "ON": ("internaldate", "on"),
    "SINCE": ("internaldate", "since"), "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"), "SENTSINCE": ("sent", "since"),
}
CHARSETS = ("UTF-8", "US-ASCII")
MAX_DEPTH = 64


class BadCharset(Exception):
    pass


def parse_program(r: Reader, charset_keyword: bool = True) -> list:
    """[CHARSET name SP] key *(SP key): the keys, all of which must match. SORT and
    THREAD name the charset first, without the CHARSET keyword (RFC 5256 §3)."""
    if not charset_keyword or r.accept(b"CHARSET "):
        charset = r.astr().upper()
        if charset not in CHARSETS:
            raise BadCharset(charset)
        r.sp()
    keys = [parse_key(r, 0)]
    while not r.at_end() and r.peek() == b" ":
        r.sp()
        keys.append(parse_key(r, 0))
    r.end()
    return keys


def parse_key(r: Reader, depth: int) -> tuple:
    if depth > MAX_DEPTH:
        raise ParseError("search keys nested too deeply")
    if r.open():
        keys = [parse_key(r, depth + 1)]
        while not r.close():
            r.sp()
            keys.append(parse_key(r, depth + 1))
        return ("and", keys)
    if r.is_sequence_set_next():
        return ("seq", r.sequence_set())
    word = r.atom().upper()
    if word == "ALL":
        return ("all",)
    if word in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[word]
        return ("flag", flag, present)
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return ("flag", r.atom(), word == "KEYWORD")
    if word in _HEADER_KEYS:
        r.sp()
        return ("header", _HEADER_KEYS[word], r.astr())
    if word == "HEADER":
        r.sp()
        name = r.astr()
        r.sp()
        return ("header", name.lower(), r.astr())
    if word in ("TEXT", "BODY"):
        r.sp()
        return (word.lower(), r.astr())
    if word in _DATE_KEYS:
        r.sp()
        column, op = _DATE_KEYS[word]
        return (column, op, r.date())
    if word in ("LARGER", "SMALLER"):
        r.sp()
        return (word.lower(), r.number())
    if word in ("OLDER", "YOUNGER"):             # RFC 5032 WITHIN
        r.sp()
        return (word.lower(), r.nz_number())
    if word == "NOT":
        r.sp()
        return ("not", parse_key(r, depth + 1))
    if word == "OR":
        r.sp()
        a = parse_key(r, depth + 1)
        r.sp()
        return ("or", a, parse_key(r, depth + 1))
    if word == "UID":
        r.sp()
        return ("uid", r.sequence_set())
    if word == "RECENT":
        return ("recent",)
    if word == "OLD":
        return ("not", ("recent",))
    if word == "NEW":
        return ("and", [("recent",), ("flag", "\\Seen", False)])
    if word == "MODSEQ":                          # RFC 7162 §3.1.5
        r.sp()
        if r.peek() == b'"':
            r.quoted()                            # entry name: per-flag MODSEQs not kept
            r.sp()
            r.atom()                              # entry type: priv / shared / all
            r.sp()
        return ("modseq", r.number())
    raise ParseError(f"unknown search key {word}")


def uses(key: tuple, kind: str) -> bool:
    """Does the key tree contain a key of this kind?"""
    if key[0] == kind:
        return True
    if key[0] == "and":
        return any(uses(k, kind) for k in key[1])
    if key[0] == "or":
        return uses(key[1], kind) or uses(key[2], kind)
    if key[0] == "not":
        return uses(key[1], kind)
    return False
