"""The store's state machine as data: one row per operation, read by every backend.

Each backend renders the rows into its own language (`sql.py`, `lua.py`) or asks them directly
(`Transition.allows`), so which states an operation leaves, where it goes, whether an
expired lease counts, whether the lease's token is needed and what it resets are written here once.
The conformance suite (tests/test_store_contract.py) walks every row on every backend against a
table written out by hand.

A lease is live while `lease_until` is in the future. An IN_FLIGHT event whose lease ran out
belongs to nobody: the operations marked `takes_expired` take it like one of their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ACQUIRE",
    "CLAIM",
    "CLAIMABLE",
    "COMPLETE",
    "DEAD_LETTER",
    "LEASED",
    "RECORDABLE",
    "RELEASE",
    "REPLAY",
    "REPLAYABLE",
    "RESCHEDULE",
    "RETAINED",
    "RETRY",
    "RETRYABLE",
    "EventState",
    "Transition",
]


class EventState(StrEnum):
    PENDING = "pending"
    """Recorded and waiting for a dispatcher (queued delivery, or a retry/replay) once it is due."""
    IN_FLIGHT = "in_flight"
    """A delivery holds the lease."""
    RELEASED = "released"
    """An inline delivery failed; the provider's resend (or `paynotify events retry`) runs it again."""
    DONE = "done"
    """Every subscriber succeeded."""
    DEAD = "dead"
    """Queued delivery gave up after `max_attempts`; `paynotify events retry` (or a new copy from
    the provider, handled inline) revives it with a fresh attempt budget."""
    REJECTED = "rejected"
    """Verified, but refused by an account check or a check hook; the reason is `last_error`.
    `paynotify events replay` re-runs the checks with the current settings and delivers it."""
    UNHANDLED = "unhandled"
    """Verified, but not a payment, refund or transfer; offered to unhandled-hooks, kept for the record."""


S = EventState


@dataclass(frozen=True, slots=True)
class Transition:
    """One operation of the state machine."""

    name: str
    sources: frozenset[EventState]
    """The states the operation leaves (anything else: refused, nothing changes)."""
    target: EventState
    takes_expired: bool = False
    """An IN_FLIGHT event whose lease ran out counts as a source."""
    needs_token: bool = False
    """Only the holder of the lease (its token) may make it."""
    takes_lease: bool = False
    """The caller leaves holding a new lease: a fresh token, attempts + 1."""
    resets_attempts_from: frozenset[EventState] = frozenset()
    """Coming from these states, the attempt count starts again at 0 (a fresh retry budget)."""
    forgets_subscribers: bool = False
    """Which subscribers already succeeded is forgotten: every subscriber runs again."""

    def allows(self, state: EventState, *, lease_expired: bool) -> bool:
        """Whether an event in `state` (with its lease run out, if it has one) may be taken."""
        return state in self.sources or (self.takes_expired and state is S.IN_FLIGHT and lease_expired)


CLAIM = Transition(
    "claim",
    frozenset({S.PENDING, S.RELEASED, S.DEAD, S.REJECTED}),
    S.IN_FLIGHT,
    takes_expired=True,
    takes_lease=True,
)
"""A delivery takes the event (inline). DONE answers DONE, a live lease IN_FLIGHT. REJECTED is a
source because the pipeline claims only after the checks passed: a resend after the account was
fixed is delivered."""
ACQUIRE = Transition("acquire", frozenset({S.PENDING}), S.IN_FLIGHT, takes_expired=True, takes_lease=True)
"""A dispatcher takes a due event (queued): PENDING once its time has come, or an expired lease."""
RETRY = Transition(
    "retry",
    frozenset({S.PENDING, S.RELEASED, S.DEAD}),
    S.PENDING,
    takes_expired=True,
    resets_attempts_from=frozenset({S.DEAD}),
)
"""`requeue`: due now; a dead letter gets a fresh attempt budget (its old one was spent on a cause
now fixed)."""
REPLAY = Transition(
    "replay",
    RETRY.sources | {S.DONE, S.REJECTED},
    S.PENDING,
    takes_expired=True,
    resets_attempts_from=frozenset({S.DEAD}),
    forgets_subscribers=True,
)
"""`requeue(replay=True)`: every subscriber runs again. The pipeline re-runs a rejected event's
checks before it asks."""
COMPLETE = Transition("complete", frozenset(S) - {S.DONE}, S.DONE)
"""Any state but DONE, with or without the lease: the subscribers did run, whoever holds it now."""
RELEASE = Transition("release", frozenset({S.IN_FLIGHT}), S.RELEASED, needs_token=True)
"""A failed inline delivery gives the lease back for the provider's resend."""
RESCHEDULE = Transition("reschedule", frozenset({S.IN_FLIGHT}), S.PENDING, needs_token=True)
"""A failed queued attempt: PENDING again, due after its backoff."""
DEAD_LETTER = Transition("dead_letter", frozenset({S.IN_FLIGHT}), S.DEAD, needs_token=True)
"""A queued event that failed `max_attempts` times."""

CLAIMABLE = CLAIM.sources
RETRYABLE = RETRY.sources
REPLAYABLE = REPLAY.sources
LEASED = RELEASE.sources
RECORDABLE = {S.REJECTED: frozenset({S.REJECTED}), S.UNHANDLED: frozenset[EventState]()}
"""`record(entry, state)` writes a new event in `state`, or overwrites an existing one only in these
states (a rejected event refused again gets the new reason); anything else is left as it is."""
RETAINED = (S.DONE, S.REJECTED, S.UNHANDLED)
"""What the retention purge deletes once older than `retention_days`."""
