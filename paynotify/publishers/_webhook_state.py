"""One endpoint's delivery state: its retry schedule, its circuit breaker, and what it did lately
(counters, a latency histogram and the last attempts, for metrics and the console). In memory, per
process: the durable part (which event is due when, which is dead) lives in the endpoint's outbox."""

from __future__ import annotations

import random
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from paynotify import ConfigurationError

__all__ = [
    "LATENCY_BUCKETS",
    "Attempt",
    "Circuit",
    "CircuitBreaker",
    "EndpointState",
    "RetrySchedule",
    "Stats",
]

# An endpoint answers in milliseconds when healthy; the default timeout is 5 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential backoff with jitter: after the n-th failed attempt the next waits
    `min(max_backoff, backoff * 2**(n-1))`, scaled by a random factor in [1 - jitter, 1]; after
    `max_attempts` attempts the event is dead-lettered (None)."""

    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 3600.0
    max_attempts: int = 12
    jitter: float = 0.5

    def __post_init__(self) -> None:
        for name in ("backoff_seconds", "max_backoff_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be positive, not {getattr(self, name)!r}")
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ConfigurationError(f"max_attempts must be a whole number >= 1, not {self.max_attempts!r}")
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"jitter must be in [0, 1), not {self.jitter!r}")

    def ceiling(self, attempts: int) -> float:
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** min(attempts - 1, 62)))

    def delay(self, attempts: int, draw: float | None = None) -> float | None:
        """Seconds until the next attempt after `attempts` failed ones; None: dead-letter."""
        if attempts >= self.max_attempts:
            return None
        factor = 1 - self.jitter * (random.random() if draw is None else draw)
        return self.ceiling(attempts) * factor


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class EndpointState(StrEnum):
    """What the console shows: the circuit and the failing streak in one word."""

    HEALTHY = "healthy"
    FAILING = "failing"
    OPEN = "open"
    DISABLED = "disabled"


class CircuitBreaker:
    """Open after `failures` consecutive failures: no attempts for `reset_seconds`, then one probe
    (half-open) whose outcome closes or re-opens it. After failing without a success for
    `disable_after_seconds` the endpoint is disabled until `enable()` (the console's retry, or a
    restart)."""

    def __init__(
        self,
        *,
        failures: int = 5,
        reset_seconds: float = 30.0,
        disable_after_seconds: float = 86400.0,
    ) -> None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ConfigurationError(f"circuit_failures must be a whole number >= 1, not {failures!r}")
        for name, value in (
            ("circuit_reset_seconds", reset_seconds),
            ("disable_after_seconds", disable_after_seconds),
        ):
            if not value > 0:
                raise ConfigurationError(f"{name} must be positive, not {value!r}")
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self.disable_after_seconds = disable_after_seconds
        self.circuit = Circuit.CLOSED
        self.consecutive = 0
        self.failing_since: float | None = None
        self.opened_at = 0.0
        self.disabled = False
        self._probing = False

    @property
    def state(self) -> EndpointState:
        if self.disabled:
            return EndpointState.DISABLED
        if self.circuit is not Circuit.CLOSED:
            return EndpointState.OPEN
        return EndpointState.FAILING if self.consecutive else EndpointState.HEALTHY

    def wait(self, now: float) -> float:
        """Seconds before an attempt may be made (0: now); inf while disabled or a probe runs."""
        if self.disabled or self._probing:
            return float("inf")
        if self.circuit is Circuit.OPEN:
            return max(0.0, self.opened_at + self.reset_seconds - now)
        return 0.0

    def allow(self, now: float) -> bool:
        """May an attempt start now? In half-open, only one (the probe) until it reports."""
        if self.wait(now) > 0:
            return False
        if self.circuit is Circuit.OPEN:
            self.circuit = Circuit.HALF_OPEN
        if self.circuit is Circuit.HALF_OPEN:
            self._probing = True
        return True

    def succeeded(self) -> None:
        self.circuit, self.consecutive, self.failing_since, self._probing = Circuit.CLOSED, 0, None, False

    def failed(self, now: float) -> None:
        self.consecutive += 1
        if self.failing_since is None:
            self.failing_since = now
        if self.circuit is Circuit.HALF_OPEN or self.consecutive >= self.threshold:
            self.circuit, self.opened_at = Circuit.OPEN, now
        self._probing = False
        if now - self.failing_since >= self.disable_after_seconds:
            self.disabled = True

    def enable(self) -> None:
        """Back to closed: an operator asked for the endpoint to be tried again."""
        self.disabled = False
        self.succeeded()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST: when, to which event, the HTTP status (None: no answer), how long, what failed."""

    at: float
    event_id: str
    status_code: int | None
    seconds: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


class Stats:
    """Counters, a latency histogram and the last `keep` attempts of one endpoint, in this process."""

    def __init__(self, keep: int = 50) -> None:
        self.attempts = 0
        self.failures = 0
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.recent: deque[Attempt] = deque(maxlen=keep)

    def record(self, attempt: Attempt) -> None:
        self.attempts += 1
        if not attempt.ok:
            self.failures += 1
        self.latency[bisect_left(LATENCY_BUCKETS, attempt.seconds)] += 1
        self.latency_sum += attempt.seconds
        self.recent.append(attempt)
