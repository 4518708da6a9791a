"""The state machine's rows as SQL, for SQLite and PostgreSQL alike.

Placeholders differ (`?` against `$n`), so each function takes the placeholder text it should write.
"""

from __future__ import annotations

from collections.abc import Iterable

from paynotify._stores.transitions import EventState, Transition

__all__ = ["attempts_after", "leave", "sql_in", "sql_sources", "with_lease"]


def sql_in(states: Iterable[EventState]) -> str:
    """The states as an SQL IN-list body: `'pending', 'released'` (sorted, constant text)."""
    return ", ".join(f"'{s.value}'" for s in sorted(states))


def sql_sources(transition: Transition, *, now: str = "?", table: str = "") -> str:
    """The condition "the row may be taken by `transition`": its source states, and an expired lease
    where it counts (`now`: the placeholder of the current time; `table`: a qualifier like `e.`)."""
    states = f"{table}state IN ({sql_in(transition.sources)})"
    if not transition.takes_expired:
        return states
    return f"({states} OR ({table}state = 'in_flight' AND COALESCE({table}lease_until, 0) <= {now}))"


def with_lease(transition: Transition, *, placeholders: tuple[str, str] = ("?", "?")) -> str:
    """`sql_sources`, and the lease's own token where the transition needs it; `placeholders` are
    those of the token and of the current time."""
    token, now = placeholders
    sources = sql_sources(transition, now=now)
    return f"token = {token} AND {sources}" if transition.needs_token else sources


def leave(transition: Transition) -> str:
    """The assignments that move a row to the transition's target without a lease."""
    return f"state = '{transition.target.value}', token = NULL, lease_until = NULL"


def attempts_after(transition: Transition) -> str:
    """The attempts assignment: reset where the transition resets it, else unchanged."""
    if not transition.resets_attempts_from:
        return "attempts = attempts"
    return (
        f"attempts = CASE WHEN state IN ({sql_in(transition.resets_attempts_from)}) THEN 0 ELSE attempts END"
    )
