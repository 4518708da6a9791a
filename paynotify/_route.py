"""The one route every door serves (ASGI, WSGI, Django): `POST /{account}/notify` and
`GET|POST /{account}/return`. Its path split, method rules, body-length rule and the replies no
provider decides live here once, so the three doors cannot drift apart.
"""

from __future__ import annotations

from paynotify._errors import UnknownAccount, UnknownChannel
from paynotify._http import Reply

__all__ = [
    "BAD_LENGTH",
    "DISCONNECTED",
    "NOT_FOUND",
    "TOO_LARGE",
    "TOO_SLOW",
    "declared_over",
    "door_reason",
    "method_reply",
    "remote_address",
    "split",
    "unknown_reply",
]

NOT_FOUND = Reply.text("not found", 404)
UNKNOWN_ACCOUNT = Reply.text("unknown account", 404)
TOO_LARGE = Reply.text("body too large", 413)
# The connection closes: the rest of a body that came too slowly is not worth waiting for.
TOO_SLOW = Reply.text("body not received in time", 408, {"connection": "close"})
DISCONNECTED = Reply.text("client disconnected", 400)
BAD_LENGTH = Reply.text("bad content-length", 400)
_NOTIFY_IS_POST = Reply.text("notifications are POSTed", 405, {"allow": "POST"})
_GET_OR_POST = Reply.text("method not allowed", 405, {"allow": "GET, POST"})


def split(path: str) -> tuple[str, str] | None:
    """`(account, channel)` of a path below the mount point, or None when it is not the route's."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def method_reply(method: str, channel: str) -> Reply | None:
    """The 405 a method gets on a channel, or None when it may pass."""
    if method not in ("POST", "GET"):
        return _NOTIFY_IS_POST if channel == "notify" else _GET_OR_POST
    if channel == "notify" and method != "POST":
        return _NOTIFY_IS_POST
    return None


def declared_over(content_length: str | None, limit: int) -> bool:
    """True for a Content-Length over `limit`: refused before a byte of the body is read. A value
    that is not a number is the door's to judge (an ASGI server has already refused it)."""
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


def unknown_reply(exc: UnknownAccount) -> Reply:
    """404 for a request no account answers; for a known account's unknown channel, the text names
    the channels it has (a notify_url with a typo is found from the reply alone)."""
    if isinstance(exc, UnknownChannel):
        channels = ", ".join(f"/{exc.account}/{c}" for c in sorted(exc.channels))
        return Reply.text(f"unknown channel; account {exc.account!r} serves {channels}", 404)
    return UNKNOWN_ACCOUNT


def remote_address(client: object) -> str | None:
    """The peer's address of a request, from what any door passes as `InboundRequest.client`: an
    ASGI `(host, port)` (the port left out: it changes with every connection), a WSGI or Django
    `REMOTE_ADDR` string, or None. Cut to 64 characters (a server may pass a Unix socket path)."""
    if type(client) is tuple or type(client) is list:
        client = client[0] if client else None
    if isinstance(client, str) and client:
        return client[:64]
    return None


def door_reason(reply: Reply) -> str:
    """What a door's own refusal (before the pipeline) is kept under on the Refused page."""
    if reply is TOO_LARGE:
        return "too_large"
    if reply is TOO_SLOW:
        return "too_slow"
    return "bad_length" if reply is BAD_LENGTH else "disconnected"
