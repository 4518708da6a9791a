"""A provider's notification push, played locally: POST to a notify_url, and resend on the provider's
schedule until its success reply, on a virtual or a real clock, with faults (drop, duplicate, delay,
reorder). Public as `paynotify.testing`; the core knows no provider: a notification is a `DemoRequest`
(the provider's emulator makes it), the schedule and the success check are data (`ResendSchedule`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx

from paynotify._provider import DemoRequest

log = logging.getLogger("paynotify.testing")

Acknowledged = Callable[[int, bytes], bool]
"""Whether a reply (HTTP status, body) is the provider's success: it stops resending."""

SETTLE_BOUND = 30.0
"""Longest a virtual clock waits (real seconds) for the work it woke to sleep again or end."""


@dataclass(frozen=True, slots=True)
class ResendSchedule:
    """When a provider sends a notification again after its notify_url did not acknowledge it.

    `delays[i]` is the wait (seconds) after attempt i+1 failed before attempt i+2: a notification is
    sent at most `1 + len(delays)` times. `confirmed` is False when the provider does not document it.
    """

    provider: str
    delays: tuple[float, ...]
    acknowledged: Acknowledged
    confirmed: bool = True

    @property
    def offsets(self) -> tuple[float, ...]:
        """When each attempt goes out, in seconds after the first: (0, d1, d1 + d2, ...)."""
        return tuple(itertools.accumulate(self.delays, initial=0.0))

    def scaled(self, factor: float) -> ResendSchedule:
        """The same attempts with every wait multiplied by `factor` (0.001: a day in ~90 s)."""
        return replace(self, delays=tuple(d * factor for d in self.delays))

    def once(self) -> ResendSchedule:
        """One attempt, no resends."""
        return replace(self, delays=())


class Clock(Protocol):
    """Where a courier's time comes from: `now()`, `sleep(seconds)`, and `start(work)` for its tasks."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...


class RealClock:
    """asyncio's time; waits multiplied by `scale` (1: the provider's real schedule)."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale < 0:
            raise ValueError("scale must not be negative")
        self.scale = scale

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) * self.scale)

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(work)


class VirtualClock:
    """Time that moves only when a test says: `await clock.advance(seconds)` wakes, in deadline order,
    every sleeper due, and after each waits until the work it started sleeps again or ends (bounded
    by SETTLE_BOUND real seconds), so a test sees every attempt due by then, without sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None], asyncio.Task[Any] | None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._asleep: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.current_task()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._order), future, task))
        if task is not None:
            self._asleep.add(task)
        self._changed.set()
        try:
            await future
        finally:
            if task is not None:
                self._asleep.discard(task)

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._changed.set()

    async def settle(self) -> None:
        """Wait until every task started on this clock sleeps on it or has ended."""
        async with asyncio.timeout(SETTLE_BOUND):
            while not self._tasks <= self._asleep:
                self._changed.clear()
                await self._changed.wait()

    async def advance(self, seconds: float) -> None:
        """Move time `seconds` on, running every attempt due by then."""
        target = self._now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future, task = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if task is not None:
                self._asleep.discard(task)
            if not future.done():
                future.set_result(None)
            await self.settle()
        self._now = max(self._now, target)


@dataclass(frozen=True, slots=True)
class SendAttempt:
    """One POST of a notification: the attempt's number (1: the first send), the copy (duplicates),
    when (clock time), the HTTP status (None: no reply within the timeout or no connection)."""

    number: int
    copy: int
    at: float
    status: int | None
    acknowledged: bool


@dataclass(eq=False)
class Sending:
    """One notification on its way: every attempt so far, and whether it ended."""

    url: str
    request: DemoRequest
    dropped: bool = False
    attempts: list[SendAttempt] = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first attempt is answered (or the notification dropped)."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def acknowledged(self) -> bool:
        return any(a.acknowledged for a in self.attempts)

    @property
    def statuses(self) -> list[int | None]:
        return [a.status for a in self.attempts]

    async def wait(self, bound: float = 60.0) -> Sending:
        """Until the notification is acknowledged, given up or dropped (at most `bound` seconds)."""
        async with asyncio.timeout(bound):
            await self.ended.wait()
        return self


class NotificationCourier:
    """Sends notifications to notify_urls as one provider does (`schedule`), through `client`.

    `send(url, request)` starts it and returns its `Sending` at once: the first POST goes out after
    `delay` seconds (on the clock), `copies` times in a row (a duplicate: 2); while no copy of an
    attempt is acknowledged it is sent again after the schedule's next wait; `drop` sends nothing.
    Each POST is bounded by `timeout` seconds (a timeout is a failed attempt, as at the provider).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        schedule: ResendSchedule,
        *,
        clock: Clock | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.schedule = schedule
        self.clock: Clock = clock or RealClock()
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def send(
        self, url: str, request: DemoRequest, *, copies: int = 1, drop: bool = False, delay: float = 0.0
    ) -> Sending:
        sending = _sending(url, request, copies, drop)
        if not drop:
            task = self.clock.start(self._run(sending, copies, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return sending

    async def deliver(
        self, url: str, request: DemoRequest, *, copies: int = 1, drop: bool = False, delay: float = 0.0
    ) -> Sending:
        """As `send`, but in the calling task: returns once the notification is acknowledged or
        given up (on a virtual clock, only a schedule without resends ends without `advance`)."""
        sending = _sending(url, request, copies, drop)
        if not drop:
            await self._run(sending, copies, delay)
        return sending

    def queue(self) -> ReorderQueue:
        """A queue whose notifications go out together, in an order given or shuffled."""
        return ReorderQueue(self)

    async def aclose(self) -> None:
        """Stop every resend still pending."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, sending: Sending, copies: int, delay: float) -> None:
        try:
            if delay > 0:
                await self.clock.sleep(delay)
            waits = iter(self.schedule.delays)
            for number in itertools.count(1):
                for copy in range(1, copies + 1):
                    status, body = await self._post(sending)
                    ok = status is not None and self.schedule.acknowledged(status, body)
                    sending.attempts.append(SendAttempt(number, copy, self.clock.now(), status, ok))
                sending.first.set()
                if sending.acknowledged:
                    return
                wait = next(waits, None)
                if wait is None:
                    log.info(
                        "%s gave up on %s after %d attempts", self.schedule.provider, sending.url, number
                    )
                    return
                await self.clock.sleep(wait)
        finally:
            sending.first.set()
            sending.ended.set()

    async def _post(self, sending: Sending) -> tuple[int | None, bytes]:
        request = sending.request
        url = sending.url + (
            ("&" if "?" in sending.url else "?") + request.query.decode() if request.query else ""
        )
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.request(
                    request.method,
                    url,
                    content=request.body,
                    headers=dict(request.headers),
                    timeout=self.timeout,
                )
                return response.status_code, response.content
        except (httpx.HTTPError, TimeoutError) as exc:
            log.info(
                "%s notification to %s failed: %s", self.schedule.provider, sending.url, type(exc).__name__
            )
            return None, b""


def _sending(url: str, request: DemoRequest, copies: int, drop: bool) -> Sending:
    if copies < 1:
        raise ValueError("copies must be at least 1")
    sending = Sending(url, request, dropped=drop)
    if drop:
        sending.first.set()
        sending.ended.set()
    return sending


class ReorderQueue:
    """Notifications held back, then released together: `release(order)` sends them in the given
    order of their `put` indexes, or shuffled by `rng`; each starts once the one before got its
    first answer, so the order is the order they arrive in."""

    def __init__(self, courier: NotificationCourier) -> None:
        self.courier = courier
        self._held: list[tuple[str, DemoRequest, int]] = []

    def put(self, url: str, request: DemoRequest, *, copies: int = 1) -> int:
        self._held.append((url, request, copies))
        return len(self._held) - 1

    async def release(
        self, order: Sequence[int] | None = None, *, rng: random.Random | None = None
    ) -> list[Sending]:
        indexes = list(order) if order is not None else list(range(len(self._held)))
        if order is None:
            (rng or random.Random()).shuffle(indexes)
        if sorted(indexes) != list(range(len(self._held))):
            raise ValueError("order must name every held notification once")
        held, self._held = self._held, []
        sendings = []
        for index in indexes:
            url, request, copies = held[index]
            sending = self.courier.send(url, request, copies=copies)
            await _first_answer(self.courier.clock, sending)
            sendings.append(sending)
        return sendings


async def _first_answer(clock: Clock, sending: Sending) -> None:
    if isinstance(clock, VirtualClock):
        await clock.settle()
    async with asyncio.timeout(SETTLE_BOUND):
        await sending.first.wait()


async def push_once(
    client: httpx.AsyncClient,
    url: str,
    request: DemoRequest,
    *,
    copies: int = 1,
    drop: bool = False,
    before: Awaitable[object] | None = None,
) -> list[int]:
    """POST `request` once (no resends), `copies` times; `drop` sends nothing; `before` is awaited
    first (a delay). The HTTP statuses received. Inline, without a courier's bookkeeping (a test of a
    race between a notification and a query relies on the POST starting at once)."""
    if before is not None:
        await before
    if drop:
        return []
    headers = dict(request.headers)
    return [
        (await client.request(request.method, url, content=request.body, headers=headers)).status_code
        for _ in range(copies)
    ]
