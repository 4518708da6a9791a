"""Background work of an open Notifier: the queued-delivery dispatcher and the retention purge.

Dispatchers in any number of processes share one store: `Store.acquire` hands each due event to one
of them, under a lease, so an event is delivered by one dispatcher at a time and a crashed
dispatcher's events are taken over when their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from paynotify._errors import StoreError

if TYPE_CHECKING:
    from paynotify._notifier import Notifier

__all__ = ["Dispatcher", "purge_periodically"]

log = logging.getLogger("paynotify")

IDLE_POLL_SECONDS = 1.0
"""How often an idle dispatcher looks for events enqueued by other processes or now due."""
PURGE_EVERY_SECONDS = 3600.0


class Dispatcher:
    def __init__(self, notifier: Notifier, wake: asyncio.Event, *, poll_seconds: float = IDLE_POLL_SECONDS):
        self.notifier = notifier
        self.wake = wake
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        """Deliver due events until cancelled; a store outage only pauses it."""
        while True:
            try:
                delivered = await self.run_once()
            except StoreError as exc:
                log.error("dispatcher: store unavailable, retrying in %.0f s: %s", self.poll_seconds, exc)
                delivered = 0
            if delivered == 0:
                await self._idle()

    async def run_once(self) -> int:
        """Acquire up to `concurrency` due events and deliver them concurrently; returns how many."""
        notifier = self.notifier
        leases = await notifier.store.acquire(
            limit=notifier.concurrency, lease_seconds=notifier.lease_seconds
        )
        if not leases:
            return 0
        outcomes = await asyncio.gather(
            *(notifier.deliver_lease(lease) for lease in leases), return_exceptions=True
        )
        for lease, outcome in zip(leases, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # The lease will expire and another attempt will be made; nothing is lost.
                log.error("dispatcher: could not settle event %s: %s", lease.event.event_id, outcome)
        return len(leases)

    async def _idle(self) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self.poll_seconds)


async def purge_periodically(notifier: Notifier, every: float = PURGE_EVERY_SECONDS) -> None:
    """Delete completed events older than the retention period, once an hour while open."""
    while True:
        await asyncio.sleep(every)
        try:
            purged = await notifier.purge()
        except StoreError as exc:
            log.error("retention purge failed (will try again): %s", exc)
            continue
        if purged:
            log.info("purged %d completed events older than %s days", purged, notifier.retention_days)
