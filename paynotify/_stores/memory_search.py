"""The memory store's search index, built on the first search and kept up to date after it (a store
never searched pays nothing on its write path).

Exact ids (transaction, refund, provider refund) are dict keys: O(1). Prefixes (lower-cased order
ids, event ids) are sorted lists searched with bisect: O(log n + k) for k matches; an insert after
the first search is a bisect plus a list insertion (a memmove, microseconds at 10^6 keys).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from paynotify._stores.search import TOP, Search

__all__ = ["SearchIndex"]

_SEP = "\x1f"


class SearchIndex:
    def __init__(self) -> None:
        self.built = False
        self._exact: dict[str, set[str]] = {}
        self._orders: list[str] = []
        """`lower(order_id) \\x1f event_id`, sorted."""
        self._events: list[str] = []

    def build(self, entries: Iterable[tuple[str, str, tuple[str, ...]]]) -> None:
        """Index every (event_id, order_id, ids) at once."""
        for event_id, order_id, ids in entries:
            for value in ids:
                self._exact.setdefault(value, set()).add(event_id)
            self._orders.append(order_id.lower() + _SEP + event_id)
            self._events.append(event_id)
        self._orders.sort()
        self._events.sort()
        self.built = True

    def add(self, event_id: str, order_id: str, ids: tuple[str, ...]) -> None:
        for value in ids:
            self._exact.setdefault(value, set()).add(event_id)
        bisect.insort(self._orders, order_id.lower() + _SEP + event_id)
        bisect.insort(self._events, event_id)

    def remove(self, event_id: str, order_id: str, ids: tuple[str, ...]) -> None:
        for value in ids:
            holders = self._exact.get(value)
            if holders is not None:
                holders.discard(event_id)
                if not holders:
                    del self._exact[value]
        _discard(self._orders, order_id.lower() + _SEP + event_id)
        _discard(self._events, event_id)

    def candidates(self, search: Search) -> set[str]:
        """The ids of the events the term may find (the caller checks each)."""
        found = set(self._exact.get(search.text, ()))
        found.update(key.rpartition(_SEP)[2] for key in _starting(self._orders, search.order_prefix))
        if search.event_prefix is not None:
            found.update(_starting(self._events, search.event_prefix[0]))
        return found


def _starting(keys: list[str], prefix: str) -> list[str]:
    return keys[bisect.bisect_left(keys, prefix) : bisect.bisect_left(keys, prefix + TOP)]


def _discard(keys: list[str], key: str) -> None:
    i = bisect.bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]
