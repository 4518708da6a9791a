"""Who may use the operator console: a bearer token, HTTP basic credentials, or the application's
own check. There is no anonymous mode: `resolve` refuses to build a console without one.

Secrets are read from the environment or a file (never from code or a config file checked in),
held as `SecretStr` and compared with `hmac.compare_digest`, so neither a log line nor the time a
refusal takes tells anything about them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from starlette.requests import Request

from paynotify import ConfigurationError

__all__ = [
    "AuthCheck",
    "Authenticator",
    "BasicAuth",
    "BearerToken",
    "CallableAuth",
    "CsrfTokens",
    "resolve",
    "same_origin",
]

REALM = "paynotify console"

AuthCheck = Callable[[Request], "bool | Awaitable[bool]"]
"""An application's own check: true when the request comes from an operator."""


def _same(given: str, expected: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII text, and a password may well have some.
    return hmac.compare_digest(given.encode(), expected.encode())


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigurationError(f"console authentication: environment variable {name} is not set or empty")
    return value


def _file(path: str | Path) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"console authentication: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigurationError(f"console authentication: {path} is empty")
    return value


def _authorization(request: Request, scheme: str) -> str | None:
    kind, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if kind.lower() == scheme else None


class Authenticator:
    """Base of the built-in schemes: `identify` names who is signed in, or None."""

    challenge: str
    sign_in_fields: tuple[str, ...] = ()
    """The sign-in form's fields; none: no sign-in page (the application signs its operators in)."""

    async def identify(self, request: Request) -> str | None:
        raise NotImplementedError

    def sign_in(self, form: Mapping[str, str]) -> str | None:
        """The identity the sign-in form's credentials prove, or None."""
        return None


@dataclass(frozen=True)
class BearerToken(Authenticator):
    """`Authorization: Bearer <token>`; for scripts and reverse proxies that add the header."""

    token: SecretStr
    challenge: str = field(default=f'Bearer realm="{REALM}"', init=False)

    def __post_init__(self) -> None:
        if len(self.token.get_secret_value()) < 16:
            raise ConfigurationError("console authentication: a bearer token needs 16 characters or more")

    @classmethod
    def from_env(cls, name: str = "PAYNOTIFY_CONSOLE_TOKEN") -> BearerToken:
        return cls(SecretStr(_env(name)))

    @classmethod
    def from_file(cls, path: str | Path) -> BearerToken:
        return cls(SecretStr(_file(path)))

    async def identify(self, request: Request) -> str | None:
        given = _authorization(request, "bearer")
        return self._check(given) if given is not None else None

    sign_in_fields: tuple[str, ...] = field(default=("token",), init=False)

    def sign_in(self, form: Mapping[str, str]) -> str | None:
        return self._check(form.get("token", ""))

    def _check(self, given: str) -> str | None:
        return "bearer" if _same(given, self.token.get_secret_value()) else None


@dataclass(frozen=True)
class BasicAuth(Authenticator):
    """HTTP basic credentials: a browser asks for them; serve the console over TLS only."""

    user: str
    password: SecretStr
    challenge: str = field(default=f'Basic realm="{REALM}", charset="UTF-8"', init=False)

    def __post_init__(self) -> None:
        if not self.user or ":" in self.user:
            raise ConfigurationError("console authentication: the user name must be non-empty, without ':'")
        if len(self.password.get_secret_value()) < 8:
            raise ConfigurationError("console authentication: the password needs 8 characters or more")

    @classmethod
    def from_env(
        cls,
        user: str = "PAYNOTIFY_CONSOLE_USER",
        password: str = "PAYNOTIFY_CONSOLE_PASSWORD",  # noqa: S107
    ) -> BasicAuth:
        return cls(_env(user), SecretStr(_env(password)))

    @classmethod
    def from_file(cls, path: str | Path) -> BasicAuth:
        """A file holding `user:password` on one line."""
        user, sep, password = _file(path).partition(":")
        if not sep:
            raise ConfigurationError(f"console authentication: {path} must hold user:password")
        return cls(user, SecretStr(password))

    async def identify(self, request: Request) -> str | None:
        encoded = _authorization(request, "basic")
        if encoded is None:
            return None
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self._check(user, password) if sep else None

    sign_in_fields: tuple[str, ...] = field(default=("user", "password"), init=False)

    def sign_in(self, form: Mapping[str, str]) -> str | None:
        return self._check(form.get("user", ""), form.get("password", ""))

    def _check(self, user: str, password: str) -> str | None:
        # Both compared every time (`&`, not `and`): the answer takes as long for a wrong user.
        ok = _same(user, self.user) & _same(password, self.password.get_secret_value())
        return f"basic:{self.user}" if ok else None


@dataclass(frozen=True)
class CallableAuth(Authenticator):
    """The application's own check (a session cookie, a header set by an SSO proxy...).

    The CSRF token is bound to the request's Authorization and Cookie headers, so a form served to
    one signed-in operator does not work for another.
    """

    check: AuthCheck
    challenge: str = field(default=f'Bearer realm="{REALM}"')

    async def identify(self, request: Request) -> str | None:
        answer = self.check(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if answer is not True:
            return None
        headers = request.headers
        return f"app:{headers.get('authorization', '')}\x1f{headers.get('cookie', '')}"


def resolve(auth: object) -> Authenticator:
    """The console's authenticator, or `ConfigurationError`: the console never runs open."""
    if isinstance(auth, Authenticator):
        return auth
    if isinstance(auth, str):
        return BearerToken(SecretStr(auth)) if auth else _refuse()
    if isinstance(auth, SecretStr):
        return BearerToken(auth)
    if callable(auth):
        return CallableAuth(auth)
    return _refuse()


def _refuse() -> Authenticator:
    raise ConfigurationError(
        "the console needs authentication: auth=BearerToken.from_env(...), BasicAuth.from_env(...), "
        "BasicAuth.from_file(...) or a callable (request) -> bool"
    )


class CsrfTokens:
    """A form's token: random, bound to the signed-in identity, expiring.

    A cross-site page can make the browser send the operator's basic credentials (or cookie) along
    with a forged POST, but it cannot read the token out of our pages. Each page gets a fresh token
    `<expiry>.<nonce>.<mac>`, mac = HMAC(secret, identity, expiry, nonce): it is good for this
    operator only (another identity's MAC differs) and for `lifetime` seconds, so a token that
    leaks (a screenshot, a proxy log) soon stops working though the bearer token is one for all.
    The secret is drawn per process unless given: several processes behind one address need the
    same `secret`, and a restart makes the forms already open stale (reload the page).
    """

    def __init__(
        self, secret: bytes | None = None, *, lifetime: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = secret if secret is not None else secrets.token_bytes(32)
        if len(self._key) < 16:
            raise ConfigurationError("console CSRF secret: 16 bytes or more")
        self.lifetime = lifetime
        self._clock = clock

    def _mac(self, identity: str, expiry: str, nonce: str) -> str:
        message = b"\x00".join(
            [b"paynotify-console-csrf", identity.encode(), expiry.encode(), nonce.encode()]
        )
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def token(self, identity: str) -> str:
        expiry, nonce = str(int(self._clock() + self.lifetime)), secrets.token_hex(8)
        return f"{expiry}.{nonce}.{self._mac(identity, expiry, nonce)}"

    def valid(self, identity: str, given: str) -> bool:
        expiry, _, rest = given.partition(".")
        nonce, _, mac = rest.partition(".")
        if not (expiry.isdigit() and len(nonce) == 16 and len(mac) == 64):
            return False
        if not hmac.compare_digest(mac.encode(), self._mac(identity, expiry, nonce).encode()):
            return False
        return int(expiry) >= self._clock()


def same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this console: its Origin (or, without one, its
    Referer) names this host. A request with neither is not a browser's form (a script's), so
    the CSRF token alone decides."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    if claimed == "null":
        return False
    # The host (and port) the browser asked for, not the scheme: behind a proxy that ends TLS the
    # page is https to the browser and http here.
    return urlsplit(claimed).netloc.lower() == urlsplit(str(request.base_url)).netloc.lower()
