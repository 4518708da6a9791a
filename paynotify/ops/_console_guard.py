"""What stands in front of every console page: authentication, the security headers on every
answer (a 401, a 403, a redirect too), and the mount point's redirect, only once signed in."""

from __future__ import annotations

import base64
import hashlib

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paynotify.ops._auth import Authenticator

__all__ = ["CONTENT_SECURITY_POLICY", "IDENTITY", "SECURITY_HEADERS", "STYLE", "TO_ROOT", "Guard"]

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#cfe0ff;text-decoration:none}header strong{font-size:1.1em}
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
    "referrer-policy": "same-origin",  # no-referrer would make a browser send `Origin: null` on our forms
    "x-content-type-options": "nosniff",
}
IDENTITY = "paynotify_console_identity"
"""Where the guard leaves the signed-in operator in the request's state."""
TO_ROOT = "paynotify.console_root"
"""Set in the scope of a request for the mount point itself (`/console`): the guard redirects it."""


class Guard:
    """Authentication and the security headers, around every response (a 401 and a 404 too)."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app, self.auth = app, auth

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

        identity = await self.auth.identify(Request(scope))
        if identity is None:
            refused = PlainTextResponse(
                "authentication required\n", 401, headers={"www-authenticate": self.auth.challenge}
            )
            await refused(scope, receive, secured)
            return
        if scope.get(TO_ROOT):
            # `/console` itself: to `/console/`, relative (never built from the Host header), and
            # only once signed in, with the security headers like every other answer.
            await RedirectResponse("console/", 307)(scope, receive, secured)
            return
        scope = {**scope, "state": {**scope.get("state", {}), IDENTITY: identity}}
        await self.app(scope, receive, secured)
