"""The console's door: who the operator is (a sign-in session, or credentials in a header), the
sign-in and sign-out pages, the Origin check on every POST, the relative redirect from the mount
point, and the security headers on every response the console gives (errors and redirects too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jinja2
from markupsafe import Markup
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paynotify.ops._auth import Authenticator, CsrfTokens, same_origin
from paynotify.ops._console_filters import BadRequest
from paynotify.ops._sessions import COOKIE, Session, Sessions

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "OPERATOR",
    "SECURITY_HEADERS",
    "STYLE",
    "TO_ROOT",
    "BadRequest",
    "Guard",
    "Operator",
]

FORM_LIMIT = 64 * 1024
OPERATOR = "paynotify_console_operator"
"""Where the guard leaves the `Operator` in the request's state."""
TO_ROOT = "paynotify.console_root"
"""Set in the scope of a request for the mount point itself (`/console`): the guard redirects it."""

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#cfe0ff;text-decoration:none}header strong{font-size:1.1em}
header form{margin-left:auto}header button{background:#5b6472}
main{padding:1em 1.2em;max-width:80em}
h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;margin:.3em 0}
th,td{border:1px solid #dde1e7;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}td.t{white-space:nowrap}
code,.mono{font-family:ui-monospace,monospace;font-size:.92em;word-break:break-all}th.mono{word-break:normal}
.state{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.88em;background:#e4e7ec}
.s-done{background:#d7f2dd}.s-dead{background:#f8d0d0}.s-rejected{background:#fbe3c4}
.s-pending,.s-in_flight{background:#d8e6fb}.s-released{background:#efe1fb}.s-unhandled{background:#e8e8e8}
form.filters{display:flex;flex-wrap:wrap;gap:.6em;align-items:end;background:#fff;padding:.7em;
border:1px solid #dde1e7}
form.filters label{display:flex;flex-direction:column;font-size:.85em;gap:.15em}
input,select,button{font:inherit;padding:.2em .35em}
button,a.button{background:#2455c3;color:#fff;border:0;border-radius:3px;padding:.3em .8em;
text-decoration:none;display:inline-block;cursor:pointer}
a.button.secondary{background:#5b6472}button.danger{background:#b3261e}
.actions{display:flex;gap:.5em;margin:.6em 0}.note{color:#5b6472;font-size:.9em}
.error{background:#fde7e7;border:1px solid #f2b8b5;padding:.5em .8em}
.ok{background:#e3f6e7;border:1px solid #a8dcb4;padding:.5em .8em}
svg text{font:11px system-ui,sans-serif;fill:#5b6472}svg .bar{fill:#2455c3}svg .uncounted{fill:#e4e7ec}
svg .axis{stroke:#9aa3b0}
header,.actions{flex-wrap:wrap}.scroll{overflow-x:auto;max-width:100%}
td.oid{max-width:16em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
input[type=search]{min-width:min(28em,100%)}form.filters label.search{flex:1 1 100%}
pre.json{white-space:pre-wrap;word-break:break-all;margin:0;font-size:.9em}
#chart{max-width:100%;height:auto}
@media (max-width:640px){main{padding:.6em}header{gap:.6em}form.filters label{flex:1 1 40%}}
"""
_CSS_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    # Not no-referrer: under it a browser sends `Origin: null` with our own forms' POSTs, which
    # the Origin check must refuse. same-origin sends nothing to any other site.
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


async def read_form(request: Request) -> dict[str, list[str]]:
    """A small url-encoded form, read up to FORM_LIMIT bytes."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadRequest("a form was expected")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise BadRequest("the form is too large")
    try:
        return parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8") from None


@dataclass(frozen=True)
class Operator:
    """Who is signed in, and the CSRF token their forms carry."""

    identity: str
    session: Session | None
    tokens: CsrfTokens

    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else self.tokens.token(self.identity)

    def accepts(self, given: str) -> bool:
        if self.session is not None:  # this session's own token, and no other
            return hmac.compare_digest(given.encode(), self.session.csrf.encode())
        return self.tokens.valid(self.identity, given)


class Guard:
    """Everything before the console's pages: a request reaches them only with an `Operator`."""

    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator,
        *,
        sessions: Sessions,
        tokens: CsrfTokens,
        templates: jinja2.Environment,
        secure_cookie: bool | None = None,
    ) -> None:
        self.app, self.auth, self.sessions, self.tokens = app, auth, sessions, tokens
        self.templates = templates
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets here: the connection is refused

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        request = Request(scope, receive)
        try:
            response = await self._door(request)
        except BadRequest as exc:
            response = PlainTextResponse(f"{exc}\n", 400)
        if response is not None:
            await response(scope, receive, secured)
            return
        await self.app(scope, receive, secured)

    async def _door(self, request: Request) -> Response | None:
        """A response of the guard's own, or None with the operator left in the request's state."""
        to_root = bool(request.scope.get(TO_ROOT))
        route = "" if to_root else _route_path(request.scope)
        post = request.method == "POST"
        if route == "/sign-in" and self.auth.sign_in_fields:
            return await self._sign_in(request) if post else self._form(request, 200)
        sid = request.cookies.get(COOKIE)
        session = self.sessions.get(sid)
        identity = session.identity if session is not None else await self.auth.identify(request)
        if identity is None:
            return self._refused(request)
        operator = Operator(identity, session, self.tokens)
        if post:
            # A script's header credentials need no Origin; a browser's cookie always brings one.
            cross = self._cross_origin(request, required=session is not None)
            if cross is not None:
                return cross
        if route == "/sign-out" and post:
            form = await read_form(request)
            if not operator.accepts(form.get("csrf", [""])[0]):
                return PlainTextResponse("refused: the form's token is not valid; nothing was changed\n", 403)
            self.sessions.close(sid)
            return self._cookie(request, RedirectResponse("sign-in", 303), "", 0)
        if to_root:
            # `/console` itself: to `/console/`, relative (never built from the Host header), and
            # only once signed in, with the security headers like every other answer.
            return RedirectResponse("console/", 307)
        request.scope.setdefault("state", {})[OPERATOR] = operator
        return None

    def _cross_origin(self, request: Request, *, required: bool) -> Response | None:
        if "origin" in request.headers or "referer" in request.headers:
            if same_origin(request):
                return None
        elif not required:
            return None
        return PlainTextResponse(
            "Refused: the form was sent from another site (its Origin or Referer is not this "
            "console, or it has neither). Nothing was changed.\n",
            403,
        )

    async def _sign_in(self, request: Request) -> Response:
        cross = self._cross_origin(request, required=True)
        if cross is not None:
            return cross
        form = await read_form(request)
        identity = self.auth.sign_in({name: form.get(name, [""])[0] for name in self.auth.sign_in_fields})
        if identity is None:
            return self._form(request, 401, failed=True)
        self.sessions.close(request.cookies.get(COOKIE))  # a new id at each sign-in: no fixation
        sid, _ = self.sessions.open(identity)
        return self._cookie(request, RedirectResponse("./", 303), sid, int(self.sessions.seconds))

    def _cookie(self, request: Request, response: Response, value: str, max_age: int) -> Response:
        response.set_cookie(
            COOKIE,
            value,
            max_age=max_age,
            path=_mount_point(request.scope) + "/",
            # Behind a proxy that ends TLS the scheme here is http: `secure_cookie=True` says so.
            secure=request.url.scheme == "https" if self.secure_cookie is None else self.secure_cookie,
            httponly=True,
            samesite="strict",
        )
        return response

    def _refused(self, request: Request) -> Response:
        headers = {"www-authenticate": self.auth.challenge}
        if not self.auth.sign_in_fields:
            return PlainTextResponse("authentication required\n", 401, headers=headers)
        response = self._form(request, 401)
        response.headers.update(headers)
        return response

    def _form(self, request: Request, status: int, *, failed: bool = False) -> Response:
        root = _mount_point(request.scope)
        context: dict[str, Any] = {
            "fields": self.auth.sign_in_fields,
            "failed": failed,
            "action": root + "/sign-in",
        }
        page = self.templates.get_template("sign_in.html").render(css=Markup(STYLE), **context)  # noqa: S704
        return HTMLResponse(page, status)


def _mount_point(scope: Scope) -> str:
    """Where the console is mounted (`/console`), without its slash."""
    where = scope["path"] if scope.get(TO_ROOT) else scope.get("root_path", "")
    return str(where).rstrip("/")


def _route_path(scope: Scope) -> str:
    """The path under the mount point."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path
