"""The console's sign-in sessions.

A session is a random id (never the credential) in an HttpOnly, SameSite=Strict cookie, held in
this process's memory with its operator, its own CSRF token and its expiry: signing out, a restart
or the expiry ends it. Requests that carry credentials in a header (scripts, a browser's basic
auth) get a `CsrfTokens` token instead: bound to the operator's identity, expiring.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from paynotify import ConfigurationError

__all__ = ["COOKIE", "SESSION_SECONDS", "Session", "Sessions"]

COOKIE = "paynotify_console_session"
SESSION_SECONDS = 8 * 3600.0
"""A session lasts one working shift."""
MAX_SESSIONS = 10_000
"""Sign-ins past this drop the oldest session: memory stays bounded whoever signs in."""


def now() -> float:
    # One seam for the clock, so tests can age a session without sleeping.
    return time.time()


@dataclass(frozen=True)
class Session:
    identity: str
    csrf: str = field(repr=False)
    expires: float = 0.0


class Sessions:
    """The signed-in sessions of one console (a dict: sign-ins are rare, lookups cheap)."""

    def __init__(self, seconds: float = SESSION_SECONDS) -> None:
        if not seconds > 0:
            raise ConfigurationError("console sessions: session_seconds must be positive")
        self.seconds = seconds
        self._live: dict[str, Session] = {}

    def open(self, identity: str) -> tuple[str, Session]:
        t = now()
        self._live = {sid: s for sid, s in self._live.items() if s.expires > t}
        while len(self._live) >= MAX_SESSIONS:
            del self._live[next(iter(self._live))]
        sid = secrets.token_urlsafe(32)
        session = Session(identity, secrets.token_hex(32), t + self.seconds)
        self._live[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        session = self._live.get(sid) if sid else None
        if session is None:
            return None
        if session.expires <= now():
            self._live.pop(sid or "", None)
            return None
        return session

    def close(self, sid: str | None) -> None:
        self._live.pop(sid or "", None)
