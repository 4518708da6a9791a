"""Between an event and a backend's row: the columns every backend stores, and the one row mapper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import PydanticSerializationError

from paynotify._errors import StoreError, UnstorableContent
from paynotify._result import PaymentResult, UnhandledEvent
from paynotify._stores.base import EventState, StoredEvent

__all__ = ["event_fields", "stored_event"]


def event_fields(entry: PaymentResult | UnhandledEvent) -> tuple[str, str, str, str, str, str, str]:
    """The columns every backend stores for an entry, in one place: event_id, account, provider,
    kind, status, order_id, JSON.

    A result that cannot be serialised (a lone surrogate in a verified field) raises
    `UnstorableContent`.
    """
    try:
        text = entry.model_dump_json()
    except (PydanticSerializationError, ValueError) as exc:
        raise UnstorableContent(f"event {entry.event_id} cannot be stored: {exc}") from exc
    if isinstance(entry, UnhandledEvent):
        return (entry.event_id, entry.account, entry.provider, "unhandled", entry.event_type, "", text)
    return (
        entry.event_id,
        entry.account,
        entry.provider,
        entry.kind._value_,
        entry.status._value_,
        entry.order_id,
        text,
    )


_FLOATS = ("created_at", "updated_at")


def stored_event(row: Mapping[str, Any]) -> StoredEvent:
    """The one row mapper: a backend's row (by column name) as a `StoredEvent`.

    `done_subscribers` may be a JSON array text or a sequence; numbers may be text (Redis).
    Anything that does not fit raises `StoreError` naming the event.
    """
    event_id = row.get("event_id")
    try:
        done = row["done_subscribers"]
        at = row.get("next_attempt_at")
        return StoredEvent(
            event_id=row["event_id"],
            account=row["account"],
            provider=row["provider"],
            kind=row["kind"],
            status=row["status"],
            order_id=row["order_id"],
            state=EventState(row["state"]),
            attempts=int(row["attempts"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            next_attempt_at=float(at) if at not in (None, "") else None,
            last_error=row.get("last_error") or None,
            done_subscribers=frozenset(json.loads(done) if isinstance(done, str) else done or ()),
            result_json=row["result_json"],
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"stored event {event_id} is malformed: {exc!r}") from exc
