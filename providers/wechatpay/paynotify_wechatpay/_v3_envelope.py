"""The outer JSON of a WeChat Pay API v3 notification, read only after its signature verified.

    {"id": "EV-2018022511223320873", "create_time": "2015-05-20T13:29:35+08:00",
     "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
     "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "...", "nonce": "...", ...}}

`id` names the notification (the same in each resend of it); `event_type` says what the
encrypted `resource` describes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from paynotify import MalformedNotification
from paynotify_wechatpay._json import loads

__all__ = ["ENVELOPE_FIELDS", "Envelope"]

ENVELOPE_FIELDS = ("id", "create_time", "event_type", "resource_type", "summary")
"""The outer fields a result's `raw` carries next to the decrypted resource."""


class Envelope(NamedTuple):
    """A NamedTuple, immutable like a frozen dataclass and built in half its time (one a notification)."""

    id: str
    event_type: str
    resource: dict[str, Any]
    fields: dict[str, Any]
    """Every outer field as received, the (still encrypted) resource included."""

    def __repr__(self) -> str:  # without `fields`, as the dataclass's repr=False had it
        return f"Envelope(id={self.id!r}, event_type={self.event_type!r}, resource={self.resource!r})"

    @classmethod
    def parse(cls, body: bytes) -> Envelope:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNotification("notification body is not JSON (not UTF-8)") from None
        fields = loads(text.removeprefix("\ufeff"), "notification body")
        if not isinstance(fields, dict):
            raise MalformedNotification(f"notification body is a JSON {type(fields).__name__}, not an object")
        ident, event_type, resource = fields.get("id"), fields.get("event_type"), fields.get("resource")
        if type(ident) is str and ident and type(event_type) is str and event_type and type(resource) is dict:
            return cls(ident, event_type, resource, fields)  # the usual envelope: each field read once
        for name in ("id", "event_type"):
            if not isinstance(fields.get(name), str) or not fields[name]:
                raise MalformedNotification(f"notification has no {name} (a non-empty string)")
        resource = fields.get("resource")
        if not isinstance(resource, dict):
            raise MalformedNotification("notification has no resource object")
        return cls(fields["id"], fields["event_type"], resource, fields)

    def outer_fields(self) -> dict[str, Any]:
        """The envelope's own fields (`ENVELOPE_FIELDS` that are present), without the resource."""
        fields = self.fields
        try:  # the usual case, all five there: a literal is half the cost of the comprehension
            return {
                "id": fields["id"],
                "create_time": fields["create_time"],
                "event_type": fields["event_type"],
                "resource_type": fields["resource_type"],
                "summary": fields["summary"],
            }
        except KeyError:
            return {name: fields[name] for name in ENVELOPE_FIELDS if name in fields}
