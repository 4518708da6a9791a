"""A log sampler: the first `limit` lines of a kind in each window, then only how many were left out.

Refused requests cost their sender nothing, so one WARNING each would let anyone fill the disk
(100,000 junk requests wrote 50,000 lines); the first few of a window still say what is happening,
and the count says how much. Keys are few by construction (a configured account and an outcome),
never taken from a request, so the table of windows stays small.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Sampler"]

K = TypeVar("K", bound=Hashable)


class Sampler(Generic[K]):
    """Admit the first `limit` of each key per `window` seconds; count the rest.

    A key's window opens with its first `admit`. `expired()` hands back, once each, the keys
    whose window has ended with lines left out, and their count. No lock: it runs on one event loop.
    """

    def __init__(self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        if limit < 0 or window <= 0:
            raise ValueError("limit must be >= 0 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._windows: dict[K, list[float]] = {}  # key -> [opened at, seen]
        self._ended: list[tuple[K, int]] = []  # windows over with some left out, not yet reported
        self._next_end = float("inf")

    def admit(self, key: K) -> bool:
        """Whether this one is logged (True) or only counted (False)."""
        now = self._clock()
        if now >= self._next_end:
            self._roll(now)
        entry = self._windows.get(key)
        if entry is None:
            self._windows[key] = [now, 1]
            self._next_end = min(self._next_end, now + self.window)
            return self.limit > 0
        entry[1] += 1
        return entry[1] <= self.limit

    def expired(self) -> list[tuple[K, int]]:
        """The keys whose window ended with some left out, and how many: each reported once."""
        self._roll(self._clock())
        ended, self._ended = self._ended, []
        return ended

    def pending(self) -> bool:
        """Whether some are counted and not reported yet (in a window still open, or ended)."""
        return bool(self._ended) or any(seen > self.limit for _, seen in self._windows.values())

    def _roll(self, now: float) -> None:
        next_end = float("inf")
        for key, (opened, seen) in list(self._windows.items()):
            if now - opened < self.window:
                next_end = min(next_end, opened + self.window)
                continue
            del self._windows[key]  # forgotten: the key's next one opens a fresh window
            if seen > self.limit:
                self._ended.append((key, int(seen) - self.limit))
        self._next_end = next_end
