"""The record of verified content out of its shape (`InvalidContent`), under an id of its content.

The id is a digest of the decoded fields, not of the bytes received: a provider's signature covers
the decoded fields, so re-encoding a signed message (`%61` for `a`, XML whitespace or CDATA) keeps
it verifying, and an id of the bytes would let anyone holding one signed message (every paying
buyer gets an Alipay return) write a row per spelling. Never the event id it would have had: content
out of shape can be cut from genuine signed bytes (a re-partitioned Alipay form), and a record
under the genuine event's id would make the genuine notification look recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from paynotify._errors import InvalidContent
from paynotify._provider import Account
from paynotify._result import UnhandledEvent, make_event_id

__all__ = ["content_digest", "invalid_entry"]


def content_digest(raw: Mapping[str, Any]) -> str:
    """SHA-256 of the fields, whatever their order or spelling on the wire."""
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def invalid_entry(exc: InvalidContent, account: Account[Any]) -> UnhandledEvent:
    raw = dict(exc.raw)
    event_id = make_event_id(account.name, "invalid", content_digest(raw))
    if exc.event_id is not None:
        raw["paynotify_event_id"] = exc.event_id  # what a well-formed copy would be, to find it
    return UnhandledEvent(provider=account.provider.name, account=account.name,
                          event_type="INVALID", event_id=event_id, raw=raw)  # fmt: skip
