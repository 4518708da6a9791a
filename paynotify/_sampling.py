"""Sampled log lines: the first `limit` in each `window` seconds for one key (an account and a
reason), then, once the window is over, one line saying how many were left out.

Refused requests are made by whoever can reach the endpoint: their log lines must not grow with
the requests (100,000 junk requests once wrote 50,000 WARNING lines). Keys come from configuration
(account names, outcomes, channels), never from the request, so the table stays small.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

__all__ = ["Sampler"]

Report = Callable[[Hashable, int, float], None]
"""Called with the key, how many lines were suppressed, and the window, when a window closes
having suppressed any."""


class Sampler:
    def __init__(
        self,
        report: Report,
        *,
        limit: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report = report
        self.limit = limit
        self.window = window
        self.clock = clock
        self._windows: dict[Hashable, list[float]] = {}  # key -> [ends at, lines allowed, suppressed]
        self._next_end = float("inf")

    def allow(self, key: Hashable) -> bool:
        """Whether the line for `key` is to be written now (False: counted, to be summarised)."""
        now = self.clock()
        if now >= self._next_end:
            self._close(now)
        current = self._windows.get(key)
        if current is None:
            current = self._windows[key] = [now + self.window, 0, 0]
            self._next_end = min(self._next_end, current[0])
        if current[1] < self.limit:
            current[1] += 1
            return True
        current[2] += 1
        return False

    def _close(self, now: float) -> None:
        # A summary is written when the next line of any key comes after a window's end: no timer
        # to run, and a process that went quiet has nothing new to say.
        for key, (ends, _, suppressed) in list(self._windows.items()):
            if ends <= now:
                del self._windows[key]
                if suppressed:
                    self.report(key, int(suppressed), self.window)
        self._next_end = min((w[0] for w in self._windows.values()), default=float("inf"))
