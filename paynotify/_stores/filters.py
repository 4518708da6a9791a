"""`find`'s and `purge`'s filters, for the backends: in Python (memory, Redis) and as SQL (SQLite,
PostgreSQL), so every backend matches the same events in the same order."""

from __future__ import annotations

from collections.abc import Mapping

from paynotify._errors import ConfigurationError
from paynotify._stores.base import StoredEvent

__all__ = ["InvalidFilter", "check_filters", "in_window", "keyset_window", "newest_first", "sql_filters"]


class InvalidFilter(ConfigurationError):
    """A filter no stored value can match and some backends cannot even send (a NUL character:
    PostgreSQL refuses it in text, which would otherwise read as the store being down)."""


def check_filters(values: Mapping[str, object]) -> None:
    """Refuse a text filter holding a NUL (the SQL backends call it; in memory and Redis such a
    filter simply matches nothing)."""
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidFilter(f"filter {name} holds a NUL character, which no event id or field has")


def in_window(
    created_at: float,
    event_id: str,
    created_after: float | None,
    created_before: float | None,
    before_event_id: str | None,
) -> bool:
    """Whether an event lies in `find`'s time window (for the backends that filter in Python)."""
    if created_after is not None and created_at < created_after:
        return False
    if created_before is None or created_at < created_before:
        return True
    return before_event_id is not None and created_at == created_before and event_id < before_event_id


def newest_first(event: StoredEvent) -> tuple[float, str]:
    """`find`'s order, descending: creation time, ties broken by event id."""
    return (event.created_at, event.event_id)


def keyset_window(
    created_after: float | None,
    created_before: float | None,
    before_event_id: str | None,
    *,
    event_id: str = "event_id",
) -> tuple[list[str], list[object]]:
    """`find`'s time window as SQL conditions with `?` placeholders, and their parameters.

    The position is written `created_at <= t AND (created_at < t OR event_id < id)` rather than as
    one OR, so the planner still sees a range on the created_at indexes and reads them in order.
    """
    check_filters({"before_event_id": before_event_id})
    where: list[str] = []
    params: list[object] = []
    if created_after is not None:
        where.append("created_at >= ?")
        params.append(created_after)
    if created_before is not None and before_event_id is not None:
        where.append(f"created_at <= ? AND (created_at < ? OR {event_id} < ?)")
        params += [created_before, created_before, before_event_id]
    elif created_before is not None:
        where.append("created_at < ?")
        params.append(created_before)
    return where, params


def sql_filters(
    columns: Mapping[str, str | None],
    created_after: float | None,
    created_before: float | None = None,
    before_event_id: str | None = None,
    *,
    event_id: str = "event_id",
) -> tuple[list[str], list[object]]:
    """`find`'s and `purge`'s filters as SQL conditions with `?` placeholders, and their parameters:
    `column = ?` for each column given a value (None: any), then the time window (`keyset_window`).
    """
    check_filters(columns)
    where = [f"{column} = ?" for column, value in columns.items() if value is not None]
    params: list[object] = [value for value in columns.values() if value is not None]
    where_time, time_params = keyset_window(created_after, created_before, before_event_id, event_id=event_id)
    return where + where_time, params + time_params
