"""Log output: readable lines on stderr, or one JSON object per line on stdout
([log] format = "json") for journald and log shippers.

What is logged is the code's business (events, never passwords or bodies); this only
shapes it. The level can change on reload."""

from __future__ import annotations

import json
import logging
import sys
import time

from ..config import LogSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
                 + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "logger": record.name,
                 "pid": record.process, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(settings: LogSettings) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if settings.format == "json":
        handler = logging.StreamHandler(sys.stdout)
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        handler = logging.StreamHandler(sys.stderr)
        formatter = logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    set_level(settings)


def set_level(settings: LogSettings) -> None:
    logging.getLogger().setLevel(settings.level.upper())
