"""The console's webhooks page: each endpoint's state (healthy, failing, open, disabled), its outbox,
its last attempts (status, latency, error), and a retry per endpoint (its dead letters due now, the
endpoint re-enabled), through the console's own guard, CSRF tokens and confirmation step.

The state and the attempts are this process's (each serving process keeps its own); the outbox
counts are the store's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paynotify import EventState, PaynotifyError

if TYPE_CHECKING:
    from paynotify.ops._console import _Console
    from paynotify.publishers import WebhookPublisher

__all__ = ["webhook_routes"]

RECENT_ATTEMPTS = 20


def webhook_routes(console: _Console) -> list[Route]:
    """The routes to add to the console's app."""

    def endpoints() -> list[WebhookPublisher]:
        from paynotify.publishers import webhook_publishers

        return webhook_publishers(console.notifier)

    def named(name: str) -> WebhookPublisher | None:
        return next((h for h in endpoints() if h.endpoint == name), None)

    async def page(request: Request) -> Response:
        from paynotify.publishers import shown_url

        rows: list[dict[str, Any]] = []
        for hook in endpoints():
            counts: dict[str, int] = {}
            if hook.outbox is not None:
                counts = {s.value: n for s, n in (await hook.outbox.count()).items()}
            rows.append(
                {
                    "hook": hook,
                    "url": shown_url(hook.url),
                    "counts": {s: counts.get(s, 0) for s in ("pending", "in_flight", "dead", "done")},
                    "recent": list(reversed(hook.stats.recent))[:RECENT_ATTEMPTS],
                }
            )
        return console.render(request, "webhooks.html", rows=rows)

    async def retry(request: Request) -> Response:
        hook = named(request.path_params["endpoint"])
        if hook is None:
            return console.render(request, "error.html", 404, title="No such webhook", message="")
        if request.method == "GET":
            dead = 0
            if hook.outbox is not None:
                dead = (await hook.outbox.count()).get(EventState.DEAD, 0)
            return console.render(request, "webhook_retry.html", hook=hook, dead=dead, done=None)
        refused = await console._refuse_forged(request)  # the console's own CSRF check
        if refused is not None:
            return refused
        try:
            if hook.outbox is None:
                hook.enable()
                done = "re-enabled (inline delivery: the event's own retry sends again)"
            else:
                done = f"{await hook.retry()} dead-lettered events due now; endpoint re-enabled"
        except PaynotifyError as exc:
            done = f"failed: {exc}"
        return console.render(request, "webhook_retry.html", hook=hook, dead=0, done=done)

    return [
        Route("/webhooks", page, name="webhooks"),
        Route("/webhooks/{endpoint}/retry", retry, name="webhook_retry", methods=["GET", "POST"]),
    ]
