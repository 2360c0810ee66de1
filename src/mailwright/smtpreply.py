"""An SMTP reply (RFC 5321 §4.2): a three-digit code, an enhanced status code (RFC 2034,
RFC 3463) and lines of text. One type for both directions: the replies our server sends
(smtp/) and the replies our client reads from other servers (mx/smtpclient.py). It
imports nothing of ours, so every layer that speaks SMTP can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 3463 §2: class "." subject "." detail; class 2, 4 or 5, up to three digits each.
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True)
class Reply:
    code: int
    status: str            # enhanced status code, "" for the greeting / 354 / 334 / EHLO
    lines: tuple[str, ...]

    def __init__(self, code: int, status: str, *lines: str):
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "lines", lines or ("",))

    @classmethod
    def received(cls, code: int, texts: list[str]) -> Reply:
        """A reply read from a peer: the text after each line's code. RFC 2034 §3 puts
        the enhanced status code at the start of every line; it is taken apart only
        when every line starts with the same one, so `text` gives back what came."""
        status = texts[0].split(" ", 1)[0] if texts else ""
        if _STATUS.fullmatch(status) and all(t.startswith(status + " ") for t in texts):
            return cls(code, status, *(t[len(status) + 1:] for t in texts))
        return cls(code, "", *texts)

    @property
    def text(self) -> str:
        """The lines as they read on the wire after the code, joined by newlines."""
        if not self.status:
            return "\n".join(self.lines)
        return "\n".join(f"{self.status} {line}" for line in self.lines)

    def __str__(self) -> str:
        """One line for logs, DSNs and queue state: "550 5.1.1 no such user"."""
        return f"{self.code} {self.text}".strip()

    def render(self, enhanced: bool = True) -> bytes:
        """Multi-line replies use `code-text` for all but the last line (RFC 5321 §4.2.1)."""
        cache = self.__dict__.setdefault("_wire", {})
        if enhanced not in cache:
            cache[enhanced] = self._render(enhanced)
        return cache[enhanced]

    def _render(self, enhanced: bool) -> bytes:
        out = []
        last = len(self.lines) - 1
        for i, text in enumerate(self.lines):
            sep = " " if i == last else "-"
            prefix = f"{self.status} " if (enhanced and self.status) else ""
            line = f"{self.code}{sep}{prefix}{text}"
            # RFC 4954 §4: a challenge is "334 " + base64, even when empty.
            out.append((line if self.code == 334 else line.rstrip()) + "\r\n")
        return "".join(out).encode("utf-8")
