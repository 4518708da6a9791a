"""What the console's list and bulk pages are asked for: the filters of a query string, read and
checked before the store is (an unknown state or kind, a time that does not parse, a NUL: a 400)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from paynotify import EventState

__all__ = ["KINDS", "PAGE_MAX", "PAGE_SIZE", "BadRequest", "Filters"]

PAGE_SIZE = 50
PAGE_MAX = 200
KINDS = ("payment", "refund", "transfer", "unhandled")


class BadRequest(Exception):
    """A filter or form the console cannot read; the message is shown (escaped) with a 400."""


@dataclass(frozen=True)
class Filters:
    search: str = ""
    """One term: order id prefix, transaction id, refund id or event-id prefix (`find(search=)`)."""
    account: str = ""
    provider: str = ""
    kind: str = ""
    state: str = ""
    order_id: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def read(cls, params: Mapping[str, str]) -> Filters:
        found = cls(**{f.name: params.get(f.name, "").strip() for f in fields(cls)})
        if any("\x00" in value for value in vars(found).values()):  # no store holds one, PostgreSQL errs
            raise BadRequest("a filter cannot hold a NUL character")
        if found.state and found.state not in EventState._value2member_map_:
            raise BadRequest(f"unknown state {found.state!r}")
        if found.kind and found.kind not in KINDS:
            raise BadRequest(f"unknown kind {found.kind!r}")
        found.window()  # refuse a time that does not parse now, not halfway through a page
        return found

    def window(self) -> tuple[float | None, float | None]:
        return _instant(self.since, "since"), _instant(self.until, "until")

    def query(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def find_args(self, states: frozenset[EventState] | None = None) -> dict[str, Any]:
        since, until = self.window()
        wanted = {EventState(self.state)} if self.state else None
        if states is not None:
            wanted = set(states) if wanted is None else wanted & states
        return {
            "account": self.account or None,
            "provider": self.provider or None,
            "kind": self.kind or None,
            "order_id": self.order_id or None,
            "search": self.search or None,
            "states": wanted,
            "created_after": since,
            "created_before": until,
        }


def _instant(text: str, name: str) -> float | None:
    """A `datetime-local` field's value, read as UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _cursor(params: Mapping[str, str]) -> tuple[float | None, str | None]:
    before, before_id = params.get("before", ""), params.get("before_id", "")
    if "\x00" in before_id:
        raise BadRequest("before_id holds a NUL character")
    if not before:
        return None, None
    try:
        t = float(before)
    except ValueError:
        raise BadRequest(f"before: {before!r} is not a time") from None
    if not math.isfinite(t):
        raise BadRequest(f"before: {before!r} is not a time")
    return t, before_id or None


def _page_size(params: Mapping[str, str]) -> int:
    text = params.get("limit", "") or str(PAGE_SIZE)
    if not text.isdigit() or not 1 <= int(text) <= PAGE_MAX:
        raise BadRequest(f"limit: a number from 1 to {PAGE_MAX}")
    return int(text)
