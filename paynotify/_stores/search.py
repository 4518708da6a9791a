"""One search term, as `find(search=...)` reads it: an order id prefix (case-insensitive where the
store's lower() folds the letters), a provider transaction id, a merchant or provider refund id
(exact), or an event-id prefix (6 to 32 hex characters)."""

# SQL is built only from the caller's constant table and column texts; every value is a parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from paynotify._stores.base import StoredEvent
from paynotify._stores.filters import check_filters

__all__ = ["EVENT_PREFIX_MIN", "ID_FIELDS", "TOP", "Search"]

EVENT_PREFIX_MIN = 6
ID_FIELDS = ("transaction_id", "refund_id", "provider_refund_id")
"""The result fields a search matches exactly."""
TOP = "\U0010ffff"
"""Above every character: `prefix <= x < prefix + TOP` is "x starts with prefix" in code-point (and
UTF-8 byte) order."""
_HEX = re.compile(rf"[0-9a-f]{{{EVENT_PREFIX_MIN},32}}")


@dataclass(frozen=True, slots=True)
class Search:
    """A parsed search term.

    >>> Search.of("  ORD-2024 ").order_prefix
    'ord-2024'
    """

    text: str
    """The term, stripped: what ids are compared with exactly."""
    order_prefix: str
    """The term folded with Python's `str.lower` (SQL stores fold it with their own lower())."""
    event_prefix: tuple[str, str | None] | None
    """The event-id range [low, high) for a hex term, else None (high None: no upper bound)."""

    @classmethod
    def of(cls, text: str) -> Search:
        term = text.strip()
        lowered = term.lower()
        event = (lowered, _hex_after(lowered)) if _HEX.fullmatch(lowered) else None
        return cls(term, lowered, event)

    def matches(self, event: StoredEvent) -> bool:
        """Whether `event` is one this term finds (the stores that check in Python)."""
        if event.order_id.lower().startswith(self.order_prefix):
            return True
        if self.event_prefix is not None and event.event_id.startswith(self.event_prefix[0]):
            return True
        return self.text in result_ids(event.result_json)


def result_ids(result_json: str) -> tuple[str, ...]:
    """The transaction and refund ids a stored result carries (none for an unhandled event)."""
    try:
        fields = json.loads(result_json)
    except ValueError:
        return ()
    if not isinstance(fields, dict):
        return ()
    return tuple(v for v in (fields.get(name) for name in ID_FIELDS) if isinstance(v, str) and v)


def _hex_after(prefix: str) -> str | None:
    """The smallest hex string of the same length above every string starting with `prefix`."""
    value = int(prefix, 16) + 1
    if value >= 16 ** len(prefix):
        return None
    return format(value, f"0{len(prefix)}x")


def sql_search(
    search: Search,
    table: str,
    *,
    ids: Sequence[str],
    at_least: str = ">=",
    below: str = "<",
) -> tuple[str, list[object]]:
    """The search as one SQL condition with `?` placeholders, and its parameters.

    `event_id IN (one indexed SELECT per kind of id, UNION ALL)`: each arm is a plain range or
    equality on one index, so the planner cannot trade them for a walk of the created_at index
    (which an OR of them invites under ORDER BY ... LIMIT). `ids` are the three id expressions as
    indexed; `at_least`/`below` the comparisons the order index supports (PostgreSQL's
    text_pattern_ops: `~>=~`, `~<~`).
    """
    check_filters({"search": search.text})
    arms = [
        f"SELECT event_id FROM {table} WHERE lower(order_id) {at_least} lower(?)"
        f" AND lower(order_id) {below} (lower(?) || ?)"
    ]
    params: list[object] = [search.text, search.text, TOP]
    for expression in ids:
        arms.append(f"SELECT event_id FROM {table} WHERE {expression} = ?")
        params.append(search.text)
    if search.event_prefix is not None:
        low, high = search.event_prefix
        arms.append(
            f"SELECT event_id FROM {table} WHERE event_id >= ?" + (" AND event_id < ?" if high else "")
        )
        params += [low, high] if high else [low]
    return f"event_id IN ({' UNION ALL '.join(arms)})", params
