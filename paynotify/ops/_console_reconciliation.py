"""The console's reconciliation pages: the stored reports by day and account (their counts, what was
healed, when each ran), and one report's discrepancies, each linked to its event when there is one.

Read-only: nothing here reconciles or heals (`paynotify reconcile`, or the daily run, does). The
list reads the reports' summaries; only a report's own page reads its JSON.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paynotify import ReconciliationStore, Store
from paynotify.ops._console_filters import BadRequest

if TYPE_CHECKING:
    from paynotify.ops._console import _Console

__all__ = ["reconciliation_routes"]

LISTED = 200
"""Reports on the list page, newest day first (about half a year of one account's)."""
KINDS = ("missing", "unknown", "amount_mismatch", "state_mismatch")


def _day(text: str, what: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadRequest(f"{what} must be a day like 2026-01-31, not {text!r}") from None


def reconciliation_routes(console: _Console) -> list[Route]:
    """The routes to add to the console's app."""

    def reports() -> ReconciliationStore | None:
        store = console.notifier.store
        if not isinstance(store, Store):
            return None
        try:
            return store.reconciliations
        except NotImplementedError:
            return None

    async def page(request: Request) -> Response:
        account = request.query_params.get("account", "").strip()
        since = request.query_params.get("since", "").strip()
        if "\x00" in account:
            raise BadRequest("a filter cannot hold a NUL character")
        kept = reports()
        rows = []
        if kept is not None:
            rows = await kept.reports(account=account or None, since=_day(since, "since") if since else None,
                                      limit=LISTED)  # fmt: skip
        return console.render(request, "reconciliations.html", rows=rows, kinds=KINDS, account=account,
                              since=since, accounts=sorted(console.notifier.accounts), kept=kept is not None,
                              listed=LISTED)  # fmt: skip

    async def one(request: Request) -> Response:
        from paynotify.reconciliation import ReconciliationReport

        account, day = request.path_params["account"], _day(request.path_params["day"], "the day")
        kept = reports()
        stored = await kept.report(account, day) if kept is not None else None
        if stored is None:
            return console.render(request, "error.html", 404, title="No such report",
                                  message=f"no reconciliation of {account!r} on {day} is stored")  # fmt: skip
        report = ReconciliationReport.from_json(stored.report_json)
        return console.render(request, "reconciliation.html", stored=stored, report=report, kinds=KINDS)

    return [
        Route("/reconciliation", page, name="reconciliations"),
        Route("/reconciliation/{account}/{day}", one, name="reconciliation"),
    ]
