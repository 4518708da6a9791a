"""The console's Expectations page: the payments and refunds the sweeper awaits (open), the ones a
final state settled and the ones that expired unpaid, filtered by account and state, newest first,
a page at a time; and per account what the sweeper recovered (`paynotify_recovered_total`).

Every page is one `ExpectationStore.find` of at most `DEEPEST + PAGE_SIZE + 1` records, however
many the store holds: past the `DEEPEST`th newest match, narrow the filters. The recovered counts
are this process's (the `Instrumentation` attached to the notifier counts them); without one
attached, the page says they are not counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paynotify import ExpectationState, ExpectationStore
from paynotify.ops._console_filters import BadRequest

if TYPE_CHECKING:
    from paynotify.ops._console import _Console

__all__ = ["DEEPEST", "PAGE_SIZE", "expectation_routes", "recovered_counts"]

PAGE_SIZE = 50
DEEPEST = 1000
"""The deepest a page starts: offsets past it are refused (each page reads from the newest)."""


def recovered_counts(notifier: object) -> dict[str, int] | None:
    """account -> recovered count of the notifier's `Instrumentation`, or None when none is attached
    (then nothing counts them in this process)."""
    from paynotify.ops import Instrumentation

    observer = getattr(notifier, "observer", None)
    if not isinstance(observer, Instrumentation):
        return None
    return observer.recovered_counts()


def _expectations(notifier: object) -> ExpectationStore | None:
    try:
        store = notifier.store  # type: ignore[attr-defined]
        return store.expectations  # type: ignore[no-any-return]
    except (NotImplementedError, AttributeError):
        return None


def _filters(params: Mapping[str, str]) -> tuple[str, str, int]:
    account = params.get("account", "").strip()
    state = params.get("state", "").strip()
    start = params.get("start", "") or "0"
    if "\x00" in account:
        raise BadRequest("a filter cannot hold a NUL character")
    if state and state not in ExpectationState._value2member_map_:
        raise BadRequest(f"unknown state {state!r}")
    if not start.isdigit() or int(start) > DEEPEST:
        raise BadRequest(f"start: a number from 0 to {DEEPEST} (narrow the filters to see older ones)")
    return account, state, int(start)


def expectation_routes(console: _Console) -> list[Route]:
    """The routes to add to the console's app."""

    async def page(request: Request) -> Response:
        account, state, start = _filters(request.query_params)
        expectations = _expectations(console.notifier)
        found = []
        if expectations is not None:
            found = await expectations.find(
                account=account or None,
                states=[ExpectationState(state)] if state else None,
                limit=start + PAGE_SIZE + 1,
            )
        query = {k: v for k, v in (("account", account), ("state", state)) if v}
        following = None
        if len(found) > start + PAGE_SIZE and start + PAGE_SIZE <= DEEPEST:
            following = {**query, "start": str(start + PAGE_SIZE)}
        preceding = None if start == 0 else {**query, "start": str(max(0, start - PAGE_SIZE))}
        return console.render(
            request,
            "expectations.html",
            kept=expectations is not None,
            rows=found[start : start + PAGE_SIZE],
            start=start,
            following=following,
            preceding=preceding,
            deepest=DEEPEST,
            account=account,
            state=state,
            states=list(ExpectationState),
            accounts=console.notifier.accounts,
            recovered=recovered_counts(console.notifier),
        )

    return [Route("/expectations", page, name="expectations")]
