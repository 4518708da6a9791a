"""A provider that accepts nothing: it refuses every notification, answering with what it was handed
(method, query and body bytes, headers), so the framework tests see exactly what an adapter passes to
a provider. Nothing it sees is verified, so nothing reaches a subscriber."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from paynotify import (
    Account,
    AccountSettings,
    InboundRequest,
    MalformedNotification,
    NotificationError,
    PaymentResult,
    Provider,
    Reply,
)

QUERY = "q=%e6%b5%8b+%2B&a=1&a=2&empty=&flag&pct=%25&plus=+"
"""A query a framework would re-encode: lower-case escapes, `+` and `%2B`, repeats, a bare name."""
BODY = b"\x00\xff\xfe\r\n a=1&b=%2B\n\xe6\xb5\x8b  "
"""A body a framework would decode or strip: NUL, bytes that are not UTF-8, CRLF, trailing spaces."""


class EchoProvider(Provider[AccountSettings]):
    name = "test-echo"
    settings_model = AccountSettings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    def parse(self, request: InboundRequest, account: Account[AccountSettings]) -> PaymentResult:
        seen = {
            "method": request.method,
            "query": request.query.hex(),
            "body": request.body.hex(),
            "headers": dict(request.headers),
        }
        raise MalformedNotification(json.dumps(seen))

    def ack(self) -> Reply:
        return Reply.text("never")

    def nack(self, error: NotificationError) -> Reply:
        return Reply(400, error.message.encode(), "application/json")


def seen(reply_body: bytes) -> dict[str, Any]:
    """What the provider was handed, from its reply: query and body as bytes again."""
    data: dict[str, Any] = json.loads(reply_body)
    data["query"] = bytes.fromhex(data["query"])
    data["body"] = bytes.fromhex(data["body"])
    return data
