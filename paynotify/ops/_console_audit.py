"""The console's audit log: who retried, replayed or requeued what, newest first, a page at a time;
and the writing of it, by every action the console performs, with the signed-in operator's name.

The name comes from the console's authentication: a BasicAuth user's name, `token` for a bearer
token (it names no one), `app` for the application's own check (its identity is built from the
request's credentials, which are never written). The CLI's actions write `cli:<user>`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paynotify import Attempt, AuditEntry, StoredEvent, StoreError
from paynotify.ops._console_filters import BadRequest
from paynotify.ops._console_guard import OPERATOR, Operator

if TYPE_CHECKING:
    from paynotify.ops._console import _Console

__all__ = ["AUDIT_PAGE", "audit_routes", "event_history", "operator_name", "write_audit"]

log = logging.getLogger("paynotify.ops")

AUDIT_PAGE = 50
SELECTION_LENGTH = 500


def operator_name(identity: str) -> str:
    """The name an audit entry gives the operator of `identity` (never a credential)."""
    kind, _, rest = identity.partition(":")
    if kind == "basic" and rest:
        return rest
    if kind == "bearer":
        return "token"
    return "app"


def _operator(request: Request) -> str:
    operator: Operator = getattr(request.state, OPERATOR)
    return operator_name(operator.identity)


async def write_audit(
    console: _Console,
    request: Request,
    action: str,
    outcomes: Sequence[tuple[str, bool, str]],
    *,
    selection: str | None = None,
) -> None:
    """Record what an action did: one entry, and a row in the history of each event it covered.

    The action has happened by now: a store that cannot record it is logged, not shown as a failure
    of the action."""
    if not outcomes:
        return
    ids = [event_id for event_id, _, _ in outcomes]
    failed = [why for _, ok, why in outcomes if not ok]
    if not failed:
        outcome = "ok"
    elif len(outcomes) == 1:
        outcome = failed[0]
    else:
        outcome = f"{len(outcomes) - len(failed)} of {len(outcomes)} {action.removeprefix('bulk-')} done"
    entry = AuditEntry.new(
        _operator(request), action, ids, outcome=outcome,
        selection=selection[:SELECTION_LENGTH] if selection else None,
    )  # fmt: skip
    try:
        await console.store.history.audit(entry, events=ids)
    except (StoreError, NotImplementedError) as exc:
        log.error("console: could not record %s by %s in the audit log: %s", action, entry.operator, exc)


async def event_history(console: _Console, event: StoredEvent) -> dict[str, list[Attempt]]:
    """The event page's two tables: its delivery attempts and the operators' actions on it."""
    try:
        rows = await console.store.history.attempts(event.event_id)
    except NotImplementedError:
        rows = []
    return {
        "delivery_attempts": [row for row in rows if row.operator is None],
        "operator_actions": [row for row in rows if row.operator is not None],
    }


def audit_routes(console: _Console) -> list[Route]:
    """The routes to add to the console's app."""

    async def page(request: Request) -> Response:
        before = request.query_params.get("before") or None
        if before is not None and (len(before) > 64 or not before.isalnum()):
            raise BadRequest("before: not an audit entry's id")
        try:
            found = await console.store.history.audit_log(before_id=before, limit=AUDIT_PAGE + 1)
        except NotImplementedError:
            found = []
        entries, more = found[:AUDIT_PAGE], len(found) > AUDIT_PAGE
        following = {"before": entries[-1].id} if more else None
        return console.render(
            request, "audit.html", entries=entries, following=following, deeper=before is not None
        )

    return [Route("/audit", page, name="audit")]
