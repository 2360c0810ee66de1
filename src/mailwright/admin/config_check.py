"""`config check`: what a loaded configuration amounts to. Loading it is config.py's,
which raises ConfigError naming file:line and key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config


@dataclass(frozen=True)
class ConfigReport:
    path: str
    listeners: int
    data_dir: Path


def report(config: Config) -> ConfigReport:
    return ConfigReport(config.path, len(config.listeners), config.data_dir)
