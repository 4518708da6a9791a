"""The sweeper: asks the provider about expectations whose news did not come.

    sweeper = Sweeper(notifier.store, notifier.query, rate_per_account=1.0)
    await sweeper.run_once()         # one round: what is due now
    await sweeper.run()              # rounds until stop()

Each round takes the due OPEN expectations under a lease (so two sweepers, in any processes, never
ask about the same one at once) and asks through `query`, which verifies and delivers: the sweeper
never delivers anything itself, so a queried payment and its late notification stay one event.
Then, by the answer:

- a final state (succeeded, closed, failed; a refund's): SETTLED with that status (`rejected` when
  an account check refused it); a new one (delivered or queued) counts as recovered;
- not found, or still pending: asked again on the schedule (1, 3, 10, 30 min, then hourly), never
  later than `until`; past `until`, EXPIRED with outcome `unpaid`;
- the provider unreachable: the account backs off (doubling, up to an hour), its other
  expectations wait with it; past `until`, EXPIRED `unknown` (nobody said it was not paid);
- another failure (an answer that does not verify, an error answer, the delivery failing):
  asked again on the schedule.

Questions per account are bounded by a token bucket (`rate_per_account` a second, bursts of
`burst`): an expectation whose account has no token left is put back, due when one will be, so a
backlog never floods a provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from paynotify import (
    ConfigurationError,
    Expectation,
    ExpectationState,
    ExpectationStore,
    Outcome,
    ProviderUnavailable,
    QueryAnswer,
    Store,
    UnknownAccount,
)
from paynotify.recovery._expectations import expectations_of, final_outcome

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["DEFAULT_SCHEDULE", "HOURLY", "Sweep", "Sweeper", "TokenBucket", "notifier_sweeper"]

log = logging.getLogger("paynotify")

DEFAULT_SCHEDULE = (60.0, 180.0, 600.0, 1800.0)
"""Seconds before the first question, then between the next ones; after the last, HOURLY."""
HOURLY = 3600.0

_DELIVERED = frozenset({Outcome.DELIVERED, Outcome.QUEUED})
_SETTLED = _DELIVERED | {Outcome.DUPLICATE}


class Query(Protocol):
    """`Notifier.query`'s shape."""

    def __call__(
        self, account: str, order_id: str, *, refund_id: str | None = ..., at: datetime | None = ...
    ) -> Awaitable[QueryAnswer]: ...


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; times from the caller's clock."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one will be there (none taken)."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class Sweep:
    """What one round did (the keys of the expectations, by what became of them)."""

    asked: list[tuple[str, str, str | None]] = field(default_factory=list)
    settled: list[tuple[str, str, str | None]] = field(default_factory=list)
    recovered: list[tuple[str, str, str | None]] = field(default_factory=list)
    rescheduled: list[tuple[str, str, str | None]] = field(default_factory=list)
    expired: list[tuple[str, str, str | None]] = field(default_factory=list)
    deferred: list[tuple[str, str, str | None]] = field(default_factory=list)
    """Put back without a question: the account's rate bound, or its provider backing off."""

    @property
    def taken(self) -> int:
        return len(self.asked) + len(self.deferred)


class Sweeper:
    def __init__(
        self,
        store: Store | ExpectationStore,
        query: Query,
        *,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        then: float = HOURLY,
        rate_per_account: float = 1.0,
        burst: float | None = None,
        batch: int = 20,
        concurrency: int = 4,
        lease_seconds: float = 120.0,
        idle: float = 5.0,
        clock: Callable[[], float] = time.time,
        recovered: Callable[[str, str], None] | None = None,
    ) -> None:
        """`recovered(provider, account)` is told of each final state the sweeper's question was
        first with (`paynotify_recovered_total`). A lease must outlast a round's questions: `batch`
        of them, `concurrency` at a time, each within the Notifier's `query_timeout`."""
        if not schedule or any(not s > 0 for s in (*schedule, then, rate_per_account, lease_seconds, idle)):
            raise ValueError("the schedule, rate, lease and idle time must be positive")
        if batch < 1 or concurrency < 1:
            raise ValueError("batch and concurrency must be at least 1")
        self.expectations = store.expectations if isinstance(store, Store) else store
        self.query = query
        self.schedule, self.then = tuple(float(s) for s in schedule), float(then)
        self.rate, self.burst = float(rate_per_account), float(burst or max(1.0, rate_per_account))
        self.batch, self.lease_seconds, self.idle = batch, float(lease_seconds), float(idle)
        self.clock = clock
        self.recovered = recovered
        self._limit = asyncio.Semaphore(concurrency)
        self._buckets: dict[str, TokenBucket] = {}
        self._down: dict[str, tuple[int, float]] = {}  # account -> (failures in a row, asked again at)
        self._probing: set[str] = set()  # accounts backing off whose one question is under way
        self._stop = asyncio.Event()

    def delay(self, attempts: int) -> float:
        """Seconds from the `attempts`-th question to the next."""
        return self.schedule[attempts] if attempts < len(self.schedule) else self.then

    async def run_once(self) -> Sweep:
        """One round: every expectation due now (up to `batch`), asked about or put back."""
        sweep = Sweep()
        now = self.clock()
        taken = await self.expectations.take(limit=self.batch, lease_seconds=self.lease_seconds, now=now)
        await asyncio.gather(*(self._one(expectation, now, sweep) for expectation in taken))
        return sweep

    async def run(self) -> None:
        """Rounds until `stop()`: at once again after a full batch, else after `idle` seconds. A
        failing round (the store down) is logged and retried after `idle`."""
        while not self._stop.is_set():
            try:
                full = (await self.run_once()).taken >= self.batch
            except Exception:
                log.exception("sweeper round failed; again in %g s", self.idle)
                full = False
            if not full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.idle)

    def stop(self) -> None:
        """End `run` after the round in progress (its questions are each bounded by a deadline),
        for good: a stopped sweeper does not run again (make another)."""
        self._stop.set()

    async def _one(self, expectation: Expectation, now: float, sweep: Sweep) -> None:
        key = expectation.key
        account = expectation.account
        async with self._limit:
            # Decided once this question's turn has come, not when the round began: a question
            # waiting for its turn behind one that found the provider down must not go out too.
            now = max(now, self.clock())
            wait = self._wait(account, now)
            if wait > 0:
                # Put back without asking: the attempt `take` counted is not one (the schedule
                # goes by questions asked).
                await self.expectations.reschedule(
                    expectation, next_due=now + wait, now=now, attempts=expectation.attempts - 1
                )
                sweep.deferred.append(key)
                return
            sweep.asked.append(key)
            at = None if expectation.at is None else datetime.fromtimestamp(expectation.at, UTC)
            backing_off = account in self._down
            if backing_off:
                self._probing.add(account)
            try:
                answer = await self.query(
                    account, expectation.order_id, refund_id=expectation.refund_id, at=at
                )
            except ProviderUnavailable as exc:
                pause = self._failed(account, now)
                log.warning("sweeper: account %r unreachable (%s); asking again in %g s", account, exc, pause)
                await self._later(expectation, now, sweep, now + pause, str(exc), "unknown")
                return
            except (UnknownAccount, ConfigurationError) as exc:
                await self._later(expectation, now, sweep, now + self.then, str(exc), "unknown")
                return
            except Exception as exc:  # refused, an error answer: counted and logged by the query
                await self._later(
                    expectation, now, sweep, now + self.delay(expectation.attempts), str(exc), "unknown"
                )
                return
            finally:
                if backing_off:
                    self._probing.discard(account)
        self._down.pop(account, None)
        result = answer.result
        outcome = None if result is None else final_outcome(result)
        if outcome is None:  # not found, or pending
            await self._later(expectation, now, sweep, now + self.delay(expectation.attempts), None, "unpaid")
            return
        if answer.outcome in _SETTLED or answer.outcome is Outcome.REJECTED_CHECK:
            closing = "rejected" if answer.outcome is Outcome.REJECTED_CHECK else outcome
            await self.expectations.settle(account, expectation.order_id, refund_id=expectation.refund_id,
                                           outcome=closing, now=now)  # fmt: skip
            sweep.settled.append(key)
            if answer.outcome in _DELIVERED and result is not None:
                sweep.recovered.append(key)
                log.info("sweeper recovered %s %r on account %r: %s", result.kind.value,
                         expectation.refund_id or expectation.order_id, account, outcome)  # fmt: skip
                if self.recovered is not None:
                    self.recovered(result.provider, account)
            return
        # In flight elsewhere, or the delivery failed: soon again, the answer will be the same.
        await self._later(expectation, now, sweep, now + self.schedule[0], str(answer.outcome), "unknown")

    async def _later(
        self, expectation: Expectation, now: float, sweep: Sweep, due: float, error: str | None, ending: str
    ) -> None:
        """Ask again at `due` (never after `until`); past `until`, EXPIRED with outcome `ending`."""
        if now >= expectation.until:
            await self.expectations.settle(
                expectation.account, expectation.order_id, refund_id=expectation.refund_id,
                outcome=ending, state=ExpectationState.EXPIRED, now=now,
            )  # fmt: skip
            sweep.expired.append(expectation.key)
            return
        await self.expectations.reschedule(
            expectation, next_due=min(due, expectation.until), error=error, now=now
        )
        sweep.rescheduled.append(expectation.key)

    def _wait(self, account: str, now: float) -> float:
        """Seconds the account's next question must wait: its provider backing off (one question
        at a time while it does, the probe), else its rate bound; 0 to ask now."""
        if account in self._down:
            again = self._down[account][1]
            if again > now:
                return again - now
            if account in self._probing:  # its answer decides; the others follow a second later
                return 1.0
        return self._bucket(account, now).take(now)

    def _failed(self, account: str, now: float) -> float:
        """The account's provider did not answer: back off, doubling from the first pause up to
        `then`. Questions that were already under way together count as one failure."""
        failures, again = self._down.get(account, (0, 0.0))
        if again > now:  # another question of the same moment failed first: its pause holds
            return again - now
        failures += 1
        pause: float = min(self.schedule[0] * 2.0 ** (failures - 1), self.then)
        self._down[account] = (failures, now + pause)
        return pause

    def _bucket(self, account: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = TokenBucket(self.rate, self.burst, now)
        return bucket


def notifier_sweeper(notifier: Notifier) -> Sweeper | None:
    """The sweeper `Notifier.open` runs (options `sweep_rate`, `query_timeout`), telling the
    notifier's observer what it recovered; None when its store keeps no expectations."""
    if expectations_of(notifier.store) is None:
        log.warning("%s keeps no expectations: no sweeper runs", type(notifier.store).__name__)
        return None

    def recovered(provider: str, account: str) -> None:
        observer = notifier.pipeline.observer  # the one observing now, attached before or after
        if observer is not None:
            observer.recovered(provider, account)

    options = notifier.options
    return Sweeper(notifier.store, notifier.query, rate_per_account=options.sweep_rate,
                   lease_seconds=max(120.0, 10 * options.query_timeout), recovered=recovered)  # fmt: skip
