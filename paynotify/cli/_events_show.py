"""`paynotify events list`, `show` and `audit`: what the store holds, each event's attempts, and
the operators' actions; and the id prefixes every action takes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from paynotify import ConfigurationError, Notifier, StoredEvent
from paynotify.cli._events_options import ALL as _ALL

__all__ = ["HEADER", "as_dict", "by_id_or_prefix", "full_id", "line", "time_text"]

_FULL_ID = 32
_PREFIX_MIN = 4
_CANDIDATES = 10
"""The most candidates an ambiguous prefix\'s error lists."""


async def by_id_or_prefix(notifier: Notifier, given: str) -> StoredEvent:
    found = await notifier.store.get(await full_id(notifier, given))
    if found is None:
        raise ConfigurationError(f"no event {given!r} in this store")
    return found


async def full_id(notifier: Notifier, given: str) -> str:
    """The event id `given` starts, when it is shorter than an id and exactly one event has it.

    Stores look events up by whole id only, so a prefix reads the event list (newest first): a
    command an operator types, not a hot path."""
    if len(given) >= _FULL_ID or await notifier.store.get(given) is not None:
        return given
    if len(given) < _PREFIX_MIN:
        raise ConfigurationError(
            f"event id prefix {given!r} is too short: give {_PREFIX_MIN} or more characters"
        )
    matches = [e.event_id for e in await notifier.store.find(limit=_ALL) if e.event_id.startswith(given)]
    if len(matches) > 1:
        shown = ", ".join(matches[:_CANDIDATES]) + (", ..." if len(matches) > _CANDIDATES else "")
        raise ConfigurationError(
            f"event id prefix {given!r} is ambiguous: {len(matches)} events start with it: {shown}"
        )
    return matches[0] if matches else given


def as_dict(event: StoredEvent) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "account": event.account,
        "provider": event.provider,
        "kind": event.kind,
        "status": event.status,
        "order_id": event.order_id,
        "state": event.state.value,
        "attempts": event.attempts,
        "created_at": time_text(event.created_at),
        "updated_at": time_text(event.updated_at),
        "next_attempt_at": time_text(event.next_attempt_at) if event.next_attempt_at else None,
        "last_error": event.last_error,
        "done_subscribers": sorted(event.done_subscribers),
    }


HEADER = "  ".join(
    [
        "EVENT_ID".ljust(32),
        "CREATED".ljust(20),
        "STATE".ljust(9),
        "AT",
        "ACCOUNT",
        "KIND/STATUS",
        "ORDER",
        "ERROR",
    ]
)


def line(event: StoredEvent) -> str:
    fields: Iterable[str] = (
        event.event_id,
        time_text(event.created_at),
        event.state.value.ljust(9),
        f"{event.attempts:>2}",
        event.account,
        f"{event.kind}/{event.status}",
        event.order_id,
        (event.last_error or "")[:120],
    )
    return "  ".join(fields).rstrip()


def time_text(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
