"""What the pipeline keeps of what it refuses, so that a sender's junk costs it little: WARNING
lines sampled per account and outcome, and a rejected record's id taken from the decoded content,
never from the bytes (a re-encoded copy of signed content still verifies, and must not be a row
of its own)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from paynotify._errors import (
    InvalidContent,
    MalformedNotification,
    NotANotification,
    NotificationError,
    VerificationError,
)
from paynotify._observe import Outcome
from paynotify._pipeline_log import fields
from paynotify._provider import Account
from paynotify._result import make_event_id
from paynotify._sampling import Sampler

__all__ = ["RefusalLog", "refused_outcome", "rejected_id"]

log = logging.getLogger("paynotify")


def rejected_id(account: str, exc: InvalidContent, body: bytes) -> str:
    """The id a refused verified content is recorded under: the digest of its decoded fields (in
    one canonical serialisation), so every byte-variant of one signed content is one record; the
    body's digest only when the provider handed no fields."""
    if exc.raw:
        # Empty fields left out: Alipay and WeChat Pay v2 sign without them, so `&x=` or `<x></x>`
        # under any name would keep the signature and make another record.
        present = {name: value for name, value in exc.raw.items() if value not in ("", None)}
        content = json.dumps(present, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(content.encode("ascii")).hexdigest()
    else:
        digest = hashlib.sha256(body).hexdigest()
    return make_event_id(account, "invalid", digest)


def refused_outcome(exc: MalformedNotification | VerificationError) -> Outcome:
    """The outcome a parse failure is counted under (on either channel)."""
    if isinstance(exc, NotANotification):
        return Outcome.NOT_A_NOTIFICATION  # never recorded: any buyer could add rows (issue 25)
    if isinstance(exc, InvalidContent):
        return Outcome.REJECTED_CONTENT
    return Outcome.MALFORMED if isinstance(exc, MalformedNotification) else Outcome.REFUSED_SIGNATURE


class RefusalLog:
    """The WARNING of each refused request: the first `limit` per account and outcome in each
    `window` seconds, then one line with how many were left out, once that window is over."""

    def __init__(self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.sampler: Sampler[tuple[str, str, str]] = Sampler(limit, window, clock)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def refused(self, account: Account[Any], outcome: Outcome, exc: NotificationError) -> None:
        key = (account.name, account.provider.name, outcome.value)
        if not self.sampler.admit(key):
            self._flush_later()
            return
        event_id = exc.event_id if isinstance(exc, InvalidContent) else None
        what = "verified " if isinstance(exc, InvalidContent) else ""
        log.warning("refused %s%s notification: %s", what, account.provider.name, exc,
                    extra=fields(account, outcome, event_id, cause=exc.message))  # fmt: skip

    def flush(self) -> None:
        """Log the counts of the windows that are over (a timer calls this a window after the first
        line left out)."""
        self._timer = None
        for (account, provider, outcome), count in self.sampler.expired():
            log.warning(
                "%d more refused %s requests (%s) on account %r in %.0f s were not logged",
                count, provider, outcome, account, self.sampler.window,
                extra={"account": account, "provider": provider, "outcome": outcome,
                       "cause": f"{count} not logged"},
            )  # fmt: skip
        if self.sampler.pending():
            self._flush_later()

    def _flush_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop (the pipeline always is): nothing could wait for the window
        if self._timer is not None and self._timer_loop is loop and not loop.is_closed():
            return
        self._timer, self._timer_loop = loop.call_later(self.sampler.window, self.flush), loop
