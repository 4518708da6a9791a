"""The console's selections: retry, replay or requeue the events matching the list's filters, after
a confirmation that shows how many and which (newest first, at most BULK_LIMIT at a time).

Done events are never in a selection unless asked for explicitly (`include_done=1`, a link on the
confirmation that says how many there are): a replay with no filter would otherwise run every
subscriber again on every delivered payment. The POST checks it again, event by event, so a form
without `include_done` cannot act on a done event whatever ids it carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paynotify import EventState
from paynotify.ops._console_audit import write_audit
from paynotify.ops._console_filters import Filters
from paynotify.ops._console_guard import read_form

if TYPE_CHECKING:
    from paynotify.ops._console import _Action, _Console

__all__ = ["BULK_LIMIT", "DONE_LEFT_OUT", "bulk_routes"]

BULK_LIMIT = 500
"""A selection acts on at most this many events per confirmation (newest first)."""
DONE_LEFT_OUT = "not taken: done (a selection acts on done events only when they are included explicitly)"


def bulk_routes(console: _Console) -> list[Route]:
    """The routes to add to the console's app."""
    from paynotify.ops._console import ACTIONS, eligible

    async def perform(action: _Action, event_id: str, with_done: bool) -> tuple[str, bool, str]:
        if not with_done and EventState.DONE in action.takes:
            event = await console.store.get(event_id)
            if event is not None and event.state is EventState.DONE:
                return event_id, False, DONE_LEFT_OUT
        return await console._perform(action, event_id)

    async def bulk(request: Request) -> Response:
        name = request.path_params["action"]
        action = ACTIONS.get(name)
        refused = console._not_offered(request, name)
        if refused is not None or action is None:
            return refused or console._missing(request)
        if request.method == "POST":
            form = await read_form(request)
            refused = await console._refuse_forged(request, form)
            if refused is not None:
                return refused
            ids = form.get("id", [])[:BULK_LIMIT]
            with_done = form.get("include_done", [""])[0] == "1"
            outcomes = [await perform(action, event_id, with_done) for event_id in ids]
            selection = form.get("selection", [""])[0]
            await write_audit(console, request, f"bulk-{name}", outcomes, selection=selection)
            return console.render(request, "results.html", action=action, outcomes=outcomes, event=None)
        filters = Filters.read(request.query_params)
        with_done = request.query_params.get("include_done") == "1"
        takes = action.takes if with_done else action.takes - {EventState.DONE}
        chosen = await console.store.find(limit=BULK_LIMIT + 1, **filters.find_args(takes))
        chosen = [e for e in chosen if eligible(action, e)]
        done_too = 0  # the done events left out, counted up to BULK_LIMIT + 1
        if not with_done and EventState.DONE in action.takes and filters.state in ("", EventState.DONE.value):
            done = await console.store.find(
                limit=BULK_LIMIT + 1, **filters.find_args(frozenset({EventState.DONE}))
            )
            done_too = len(done)
        shown = chosen[:BULK_LIMIT]
        return console.render(
            request,
            "bulk.html",
            action=action,
            name=name,
            filters=filters,
            events=shown,
            more=len(chosen) > BULK_LIMIT,
            limit=BULK_LIMIT,
            with_done=with_done,
            done_in=sum(e.state is EventState.DONE for e in shown),
            done_too=done_too,
            include_done={**filters.query(), "include_done": "1"},
        )

    return [Route("/bulk/{action}", bulk, name="bulk", methods=["GET", "POST"])]
