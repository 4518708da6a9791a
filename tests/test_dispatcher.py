"""The dispatcher of queued delivery on its own: how many deliveries it runs at once, and that a
retry's timer wakes it. Real pipeline, real ExamplePay signatures, the memory store. Its idle poll
is an hour here, so nothing but a wake-up can start an attempt; every wait is bounded, and the
order of things is held by events and barriers, not by sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import APP_ID, SECRET, example_notify
from test_delivery import request

from paynotify import EventState, Lease, MemoryStore, Notifier, PaymentResult, _dispatcher
from paynotify._dispatcher import Dispatcher

HOUR = 3600.0
BOUND = 10.0
"""How long a test waits for what must happen before it fails (a bound, never a measurement)."""


def queued(**options: Any) -> Notifier:
    # dispatcher=False: open() starts none; each test builds the one it looks at.
    n = Notifier("memory://", delivery="queued", dispatcher=False, **options)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    return n


def dispatcher_of(n: Notifier) -> Dispatcher:
    dispatcher = Dispatcher(n.store, n.pipeline.deliver_lease, n.options, poll_seconds=HOUR)
    n.pipeline.wake = dispatcher.wake.set  # as Notifier.open wires its own
    return dispatcher


async def enqueue(n: Notifier, *orders: str) -> None:
    for order in orders:
        assert (await n.handle("shop", request(example_notify(order)))).body == b"OK"


async def test_a_round_takes_at_most_concurrency_events_and_delivers_them_at_once() -> None:
    n = queued(concurrency=2)
    together = asyncio.Barrier(2)  # passed only by two deliveries in progress at the same time
    delivered: list[str] = []

    @n.subscribe
    async def ship(result: PaymentResult) -> None:
        async with asyncio.timeout(BOUND):  # one at a time would wait here until the bound
            await together.wait()
        delivered.append(result.order_id)

    await n.open()
    await enqueue(n, "o-1", "o-2", "o-3", "o-4")
    dispatcher = dispatcher_of(n)
    assert await dispatcher.run_once() == 2  # not 1, not all 4
    assert sorted(delivered) == ["o-1", "o-2"]  # the two longest waiting, both through the barrier
    assert await dispatcher.run_once() == 2
    assert await dispatcher.run_once() == 0
    events = await n.store.find()
    assert [(e.state, e.attempts) for e in events] == [(EventState.DONE, 1)] * 4
    await n.aclose()


async def test_a_failed_attempt_sets_a_timer_that_wakes_the_dispatcher_when_the_retry_is_due() -> None:
    n = queued(backoff_seconds=0.05)
    woken = asyncio.Event()
    n.pipeline.wake = woken.set
    failures = [RuntimeError("ledger down")]

    @n.subscribe
    async def ship(result: PaymentResult) -> None:
        if failures:
            raise failures.pop()

    await n.open()
    await enqueue(n, "o-1")
    woken.clear()  # the enqueue's own wake-up
    (lease,) = await n.store.acquire(limit=1, lease_seconds=60)
    await n.pipeline.deliver_lease(lease)  # fails: rescheduled 0.05 s ahead
    assert not woken.is_set()  # a timer, not a wake-up now (the loop has not run since)
    async with asyncio.timeout(BOUND):
        await woken.wait()
    # Woken when due: the retry is there to take.
    (retry,) = await n.store.acquire(limit=1, lease_seconds=60)
    assert (retry.event.event_id, retry.event.attempts) == (lease.event.event_id, 2)
    await n.aclose()


async def test_the_notifiers_dispatcher_idle_for_an_hour_delivers_and_retries_when_woken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_dispatcher, "IDLE_POLL_SECONDS", HOUR)
    n = Notifier("memory://", delivery="queued", backoff_seconds=0.2)  # open() starts its dispatcher
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    attempts: list[int] = []
    retried = asyncio.Event()

    @n.subscribe
    async def ship(result: PaymentResult) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise RuntimeError("ledger down")
        retried.set()

    async with n:
        assert n.dispatcher is not None
        assert n.dispatcher.poll_seconds == HOUR
        await enqueue(n, "o-1")  # the enqueue wakes it for the first attempt, the timer for the second
        async with asyncio.timeout(BOUND):
            await retried.wait()
    (event,) = await n.store.find()
    assert (event.state, event.attempts, attempts) == (EventState.DONE, 2, [1, 2])


class HeldAcquire(MemoryStore):
    """A memory store whose next acquire, once armed, reads (and finds nothing), then waits for the
    test before answering: the window in which an event is enqueued after a round looked."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.looked = asyncio.Event()
        self.answer = asyncio.Event()

    async def acquire(self, *, limit: int, lease_seconds: float) -> list[Lease]:
        leases = await super().acquire(limit=limit, lease_seconds=lease_seconds)
        if self.armed and not leases:
            self.armed = False
            self.looked.set()
            await self.answer.wait()
        return leases


async def test_a_wake_up_while_a_round_finds_nothing_is_not_lost() -> None:
    store = HeldAcquire()
    n = Notifier(store, delivery="queued", dispatcher=False)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    delivered = asyncio.Event()

    @n.subscribe
    async def ship(result: PaymentResult) -> None:
        delivered.set()

    await n.open()
    dispatcher = dispatcher_of(n)
    store.armed = True
    running = asyncio.create_task(dispatcher.run())
    async with asyncio.timeout(BOUND):
        await store.looked.wait()  # the round has looked and found nothing
        await enqueue(n, "o-1")  # enqueued and woken now, before the round answers
        store.answer.set()
        await delivered.wait()  # the next round starts at once, not after the hour's poll
    await dispatcher.stop(running, grace=BOUND)
    await n.aclose()


async def test_a_delivery_that_raises_is_not_handed_back_at_stop_as_if_still_running() -> None:
    n = queued()
    await n.open()
    await enqueue(n, "o-1")

    async def broken(lease: Lease) -> None:
        raise RuntimeError("settling failed")  # logged; its lease expires

    dispatcher = Dispatcher(n.store, broken, n.options, poll_seconds=HOUR)
    assert await dispatcher.run_once() == 1
    running = asyncio.create_task(dispatcher.run())
    assert await dispatcher.stop(running, grace=BOUND) == {}  # nothing cut short: it had ended
    (event,) = await n.store.find()
    assert event.state is EventState.IN_FLIGHT  # left to its lease, not made due by the stop
    await n.aclose()
