"""The kit for a door onto the notification route: what `paynotify.contrib.django` is built of, and
what an adapter for another framework needs, as public names.

    from paynotify.adapters import TOO_LARGE, declared_over, method_reply, notifier_loop

    refused = method_reply(request.method, channel)          # 405, or None
    if declared_over(request.headers.get("content-length"), notifier.body_limit):
        return TOO_LARGE                                      # 413 before a byte is read
    reply = notifier_loop(notifier).submit(account, inbound).result(timeout)

The route (`/{account}/{channel}`): `split` a path below the mount point, `method_reply` for the
405s, `declared_over` for the up-front 413, `unknown_reply` for `UnknownAccount`, and the replies
no provider decides (`NOT_FOUND`, `TOO_LARGE`, `TOO_SLOW`, `DISCONNECTED`, `BAD_LENGTH`). The
loop: `notifier_loop(notifier)` is the one `NotifierLoop` a Notifier is served from outside an
ASGI server's own loop (a WSGI server, Django's per-view loops), and `notification_asgi` the ASGI
route answering through it. `keep_door_refusal` records a refusal the door made itself (413,
408, a bad length, cut short) in the notifier's Refused ring. `body_deadline` bounds a blocking
WSGI body read (docs/flask.md).

These names are the seam: the modules behind them (`paynotify._route`, `_adapter`,
`_socket_deadline`) may be reorganised; these stay.
"""

from __future__ import annotations

from paynotify._adapter import NotifierLoop, keep_door_refusal, notification_asgi, notifier_loop
from paynotify._route import (
    BAD_LENGTH,
    DISCONNECTED,
    NOT_FOUND,
    TOO_LARGE,
    TOO_SLOW,
    declared_over,
    method_reply,
    split,
    unknown_reply,
)
from paynotify._socket_deadline import BodyRead, body_deadline

__all__ = [
    "BAD_LENGTH",
    "DISCONNECTED",
    "NOT_FOUND",
    "TOO_LARGE",
    "TOO_SLOW",
    "BodyRead",
    "NotifierLoop",
    "body_deadline",
    "declared_over",
    "keep_door_refusal",
    "method_reply",
    "notification_asgi",
    "notifier_loop",
    "split",
    "unknown_reply",
]
