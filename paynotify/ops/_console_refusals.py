"""The console's Refused page: the recent requests the notification route refused (a signature
that does not verify, a missing header, content out of shape, an unknown account or channel), per
account, with the reason, provider, channel, time and remote address; never a body, a header's
value or the error's message (the sampled WARNING line has that).

Read from `Notifier.refused_requests` (`paynotify.RecentRefusals`): bounded rings in this
process's memory, so each serving process shows its own and a restart starts empty.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paynotify import RecentRefusals, RefusedRequest
from paynotify.ops._console_filters import BadRequest

if TYPE_CHECKING:
    from paynotify.ops._console import _Console

__all__ = ["SHOWN", "UNKNOWN", "refusal_routes"]

SHOWN = 200
"""At most this many rows on a page (the newest, of every ring merged)."""
UNKNOWN = "(unknown accounts)"
"""The `account` filter's value for the ring of requests for accounts no one configured."""


def _rings(recent: RecentRefusals, account: str) -> list[list[RefusedRequest]]:
    if account == UNKNOWN:
        return [recent.of_unknown()]
    if account:
        return [recent.of(account)]
    return [recent.of(name) for name in recent.accounts()] + [recent.of_unknown()]


def refusal_routes(console: _Console) -> list[Route]:
    """The routes to add to the console's app."""

    async def page(request: Request) -> Response:
        account = request.query_params.get("account", "").strip()
        if "\x00" in account:
            raise BadRequest("a filter cannot hold a NUL character")
        recent: RecentRefusals | None = getattr(console.notifier, "refused_requests", None)
        rows: list[RefusedRequest] = []
        counts: list[tuple[str, int]] = []
        if recent is not None:
            newest = heapq.merge(*_rings(recent, account), key=lambda r: r.at, reverse=True)
            rows = [row for _, row in zip(range(SHOWN), newest, strict=False)]
            counts = [(name, len(recent.of(name))) for name in recent.accounts()]
            counts.append((UNKNOWN, len(recent.of_unknown())))
        return console.render(
            request,
            "refused.html",
            kept=recent is not None,
            rows=rows,
            counts=counts,
            account=account,
            unknown=UNKNOWN,
            shown=SHOWN,
            per_account=recent.per_account if recent is not None else 0,
        )

    return [Route("/refused", page, name="refused")]
