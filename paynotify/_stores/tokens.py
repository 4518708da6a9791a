"""Lease tokens and the stores' clock."""

from __future__ import annotations

import itertools
import os
import secrets
import time

__all__ = ["new_token", "now"]


class _Tokens:
    """Lease tokens: a random per-process prefix and a counter.

    A token only has to differ from every other lease's token (it proves which claim a later call
    belongs to, between cooperating processes), so one random draw per process is enough; a fresh
    draw per claim cost a system call on every notification. A forked child draws its own prefix.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(12)
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


new_token = _Tokens()


def now() -> float:
    return time.time()
