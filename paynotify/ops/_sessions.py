"""The console's sign-in sessions and CSRF tokens.

A session is a random id (never the credential) in an HttpOnly, SameSite=Strict cookie, held in
this process's memory with its operator, its own CSRF token and its expiry: signing out, a restart
or the expiry ends it. Requests that carry credentials in a header (scripts, a browser's basic
auth) get a CSRF token bound to the operator's identity and stamped with its expiry instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from paynotify import ConfigurationError

__all__ = ["COOKIE", "SESSION_SECONDS", "CsrfTokens", "Session", "Sessions"]

COOKIE = "paynotify_console_session"
SESSION_SECONDS = 8 * 3600.0
"""A session (and a header-authenticated form's token) lasts one working shift."""
MAX_SESSIONS = 10_000
"""Sign-ins past this drop the oldest session: memory stays bounded whoever signs in."""


def now() -> float:
    # One seam for the clock, so tests can age a session without sleeping.
    return time.time()


@dataclass(frozen=True)
class Session:
    identity: str
    csrf: str
    expires: float


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


class CsrfTokens:
    """A header-authenticated form's token: its expiry and the HMAC of a secret, the signed-in
    identity and that expiry.

    A cross-site page can make the browser send the operator's basic credentials along with a
    forged POST, but it cannot read the token out of our pages. The secret is drawn per process
    unless given: several processes behind one address need the same `secret`, and a restart makes
    the forms already open stale (reload the page).
    """

    def __init__(self, secret: bytes | None = None, seconds: float = SESSION_SECONDS) -> None:
        self._key = secret if secret is not None else secrets.token_bytes(32)
        if len(self._key) < 16:
            raise ConfigurationError("console CSRF secret: 16 bytes or more")
        self.seconds = seconds

    def _mac(self, identity: str, expires: str) -> str:
        message = b"paynotify-console-csrf\x00" + identity.encode() + b"\x00" + expires.encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def token(self, identity: str) -> str:
        expires = f"{int(now() + self.seconds):012x}"
        return expires + self._mac(identity, expires)

    def valid(self, identity: str, given: str) -> bool:
        expires, mac = given[:12], given[12:]
        try:
            fresh = int(expires, 16) > now()
        except ValueError:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(identity, expires).encode()) and fresh
