"""Background work of an open Notifier: the queued-delivery dispatcher and the retention purge.

Dispatchers in any number of processes share one store: `QueueStore.acquire` hands each due event
to one of them, under a lease, so an event is delivered by one dispatcher at a time and a crashed
dispatcher's events are taken over when their leases expire. A dispatcher that is stopped lets its
deliveries finish for a while, then returns the rest, which the Notifier hands back due now, so
another process takes them at once rather than after their leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from paynotify._errors import StoreError
from paynotify._options import Options
from paynotify._stores.base import Lease, QueueStore

__all__ = ["IDLE_POLL_SECONDS", "PURGE_EVERY_SECONDS", "Dispatcher", "purge_periodically"]

log = logging.getLogger("paynotify")

IDLE_POLL_SECONDS = 1.0
"""How often an idle dispatcher looks for events enqueued by other processes or now due."""
PURGE_EVERY_SECONDS = 3600.0


class Dispatcher:
    def __init__(
        self,
        store: QueueStore,
        deliver: Callable[[Lease], Awaitable[None]],
        options: Options,
        *,
        poll_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.options = options
        self.poll_seconds = IDLE_POLL_SECONDS if poll_seconds is None else poll_seconds
        self.wake = asyncio.Event()
        self._stopping = False
        self._active: dict[str, Lease] = {}

    async def run(self) -> None:
        """Deliver due events until stopped; a store outage only pauses it."""
        while not self._stopping:
            # Cleared before looking, not before waiting: a wake-up that comes while a round finds
            # nothing (an event committed after its acquire read) makes the next round start at once.
            self.wake.clear()
            try:
                delivered = await self.run_once()
            except StoreError as exc:
                log.error("dispatcher: store unavailable, retrying in %.0f s: %s", self.poll_seconds, exc)
                delivered = 0
            if delivered == 0 and not self._stopping:
                await self._idle()

    async def run_once(self) -> int:
        """Acquire up to `concurrency` due events and deliver them concurrently; returns how many."""
        leases = await self.store.acquire(
            limit=self.options.concurrency, lease_seconds=self.options.lease_seconds
        )
        if not leases:
            return 0
        for lease in leases:
            self._active[lease.event.event_id] = lease
        outcomes = await asyncio.gather(*(self._deliver(lease) for lease in leases), return_exceptions=True)
        for lease, outcome in zip(leases, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # The lease will expire and another attempt will be made; nothing is lost.
                log.error("dispatcher: could not settle event %s: %s", lease.event.event_id, outcome)
        return len(leases)

    async def _deliver(self, lease: Lease) -> None:
        try:
            await self.deliver(lease)
        except Exception:
            self._active.pop(lease.event.event_id, None)  # settled as far as it goes: logged above
            raise
        # Only once settled: a delivery cancelled part way keeps its entry, for stop() to return.
        self._active.pop(lease.event.event_id, None)

    async def stop(self, task: asyncio.Task[None], grace: float) -> dict[str, Lease]:
        """Stop acquiring; let deliveries in progress (in `task`, `run()`'s) finish within `grace`
        seconds, then cancel them. Returns the ones cut short (event id -> its lease), for the
        caller to hand back (`Pipeline.hand_back_at_shutdown`, the one hand-back of every path)."""
        self._stopping = True
        self.wake.set()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        interrupted = dict(self._active)
        self._active.clear()
        return interrupted

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self.poll_seconds)


async def purge_periodically(purge: Callable[[], Awaitable[int]], every: float = PURGE_EVERY_SECONDS) -> None:
    """Delete settled events older than the retention period, once an hour while open."""
    while True:
        await asyncio.sleep(every)
        try:
            purged = await purge()
        except StoreError as exc:
            log.error("retention purge failed (will try again): %s", exc)
            continue
        if purged:
            log.info("purged %d settled events older than the retention period", purged)
