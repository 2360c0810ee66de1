"""What every login of a process shares, whatever the protocol: the failed-login
lockout (per client IP) and the credential cache. app.py makes one per process;
SMTP, IMAP and POP3 sessions are each given it."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import AuthSettings
from .cache import CredentialCache
from .lockout import AuthLockout, SharedFailures


@dataclass(frozen=True)
class Logins:
    lockout: AuthLockout
    cache: CredentialCache | None = None       # None: every login runs argon2

    @classmethod
    def from_settings(cls, settings: AuthSettings,
                      shared: SharedFailures | None = None) -> Logins:
        cache = None
        if settings.cache_size > 0:
            cache = CredentialCache(settings.cache_size, settings.cache_ttl,
                                    settings.cache_negative_ttl)
        return cls(AuthLockout(settings, shared=shared), cache)
