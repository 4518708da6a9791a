"""The operator console: what the store holds, and retry, replay and requeue, in a browser.

    app = Starlette(routes=[Mount("/console", app=console_app(notifier, auth=BasicAuth.from_env()))])

Server-rendered HTML (Jinja2, autoescaped), no JavaScript, nothing loaded from outside the process:
the only style is one inline block allowed by its hash in the Content-Security-Policy. Every page
needs the `auth` given (the console refuses to be built without one); every change is a POST that
carries a CSRF token, after a GET confirmation page; a GET never changes anything.

Everything is read through `EventLog` (`count`, `find`, `get`), so each page costs a bounded number
of indexed reads however large the store: see docs/console.md for what each figure covers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from paynotify import (
    REPLAYABLE,
    RETRYABLE,
    Account,
    CheckFailed,
    DeliveryFailed,
    EventLog,
    EventState,
    PaynotifyError,
    StoredEvent,
    StoreError,
)
from paynotify.ops._auth import CsrfTokens, resolve
from paynotify.ops._console_audit import audit_routes, event_history, write_audit
from paynotify.ops._console_expectations import recovered_counts
from paynotify.ops._console_filters import (
    KINDS,
    PAGE_SIZE,
    BadRequest,
    Filters,
    _cursor,
    _page_size,
)
from paynotify.ops._console_guard import OPERATOR, STYLE, Guard, Operator, read_form
from paynotify.ops._sessions import SESSION_SECONDS, Sessions

__all__ = ["ConsoleNotifier", "console_app"]

RECENT = 1000
"""The overview's per-account table counts the states of this many most recently created events."""
CHART_HOURS = 24
CHART_LIMIT = 5000
"""The chart reads at most this many events of the last 24 hours (newest first); past it, the
hours before the oldest one read are drawn as not counted, never as quiet."""
INLINE_REQUEUE = (
    "This notifier delivers inline: nothing in this process takes a requeued event (the dispatchers "
    'of queued delivery do, e.g. `paynotify worker` with delivery = "queued"), so the console does '
    "not offer Requeue. Retry delivers it now, in this process."
)


class ConsoleNotifier(Protocol):
    """What the console needs of a `Notifier`. Read when present (a `Notifier` has them all):
    `delivery` (no Requeue under "inline"), `observer` (the recovered counts of an
    `Instrumentation`) and `refused_requests` (the Refused page)."""

    @property
    def store(self) -> EventLog: ...
    @property
    def accounts(self) -> Mapping[str, Account[Any]]: ...
    async def redeliver(self, event_id: str, *, replay: bool = False) -> bool: ...


def console_app(
    notifier: ConsoleNotifier,
    *,
    auth: object,
    csrf_secret: bytes | None = None,
    session_seconds: float = SESSION_SECONDS,
    secure_cookie: bool | None = None,
) -> ASGIApp:
    """The console as an ASGI app, to mount (e.g. at `/console`).

    `auth`: `BearerToken`, `BasicAuth` (see their `from_env` / `from_file`; both get a sign-in
    page), a token string, or a callable `(request) -> bool`; without one, `ConfigurationError`.
    `csrf_secret`: share one between processes serving the same console (by default each process
    draws its own). `session_seconds`: how long a sign-in lasts. `secure_cookie`: the session
    cookie's Secure flag; by default set when the request came over https, which behind a proxy
    that ends TLS it did not (give True there).
    """
    authenticator = resolve(auth)
    console = _Console(notifier)
    return Guard(
        console.app,
        authenticator,
        sessions=Sessions(session_seconds),
        tokens=CsrfTokens(csrf_secret),
        templates=console.templates,
        secure_cookie=secure_cookie,
    )


@dataclass(frozen=True)
class _Action:
    label: str
    done: str
    explains: str
    takes: frozenset[EventState]
    run: Callable[[ConsoleNotifier, str], Awaitable[bool]]


def _redeliver(replay: bool) -> Callable[[ConsoleNotifier, str], Awaitable[bool]]:
    async def run(notifier: ConsoleNotifier, event_id: str) -> bool:
        return await notifier.redeliver(event_id, replay=replay)

    return run


async def _requeue(notifier: ConsoleNotifier, event_id: str) -> bool:
    return await notifier.store.requeue(event_id)


ACTIONS = {
    "retry": _Action(
        "Retry",
        "delivered",
        "Runs, now and in this process, the subscribers that have not yet succeeded on it.",
        RETRYABLE,
        _redeliver(replay=False),
    ),
    "replay": _Action(
        "Replay",
        "delivered",
        "Runs every subscriber again. A rejected event is first checked again with the account's "
        "current settings, and stays rejected (with the new reason) if it is still refused.",
        REPLAYABLE,
        _redeliver(replay=True),
    ),
    "requeue": _Action(
        "Requeue",
        "requeued",
        "Makes it pending and due now (a dead letter with a fresh attempt budget), for the "
        "dispatchers of queued delivery to take.",
        RETRYABLE,
        _requeue,
    ),
}


def eligible(action: _Action, event: StoredEvent) -> bool:
    """Whether to offer `action` on `event`; the store decides in the end (it may have moved on)."""
    delivers = action.run is not _requeue
    return event.state in action.takes and not (delivers and event.kind == "unhandled")


def when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class _Bar:
    x: float
    y: float
    height: float
    hour: str
    count: int
    counted: bool


def _chart(events: list[StoredEvent], t: float) -> tuple[list[_Bar], int, float | None]:
    """Events per hour over the last CHART_HOURS hours (the current hour last), the tallest bar, and
    the time from which they were all read (None: every event of the window was read)."""
    hour = 3600.0
    end = (t // hour + 1) * hour
    start = end - CHART_HOURS * hour
    complete_from = events[-1].created_at if len(events) >= CHART_LIMIT else None
    per_hour = Counter(int((e.created_at - start) // hour) for e in events if e.created_at >= start)
    tallest = max(per_hour.values(), default=0)
    bars = []
    for i in range(CHART_HOURS):
        begins = start + i * hour
        counted = complete_from is None or begins >= complete_from
        n = per_hour.get(i, 0)
        height = 120 * n / tallest if tallest and counted else (120 if not counted else 0)
        bars.append(_Bar(40 + i * 28, 140 - height, height, when(begins)[11:16], n, counted))
    return bars, tallest, complete_from


def money(event: StoredEvent) -> tuple[str, str]:
    """(amount, currency) of a stored result, as text ('' where it has none): a refund shows the
    amount refunded."""
    try:
        fields = json.loads(event.result_json)
    except ValueError:
        return "", ""
    if not isinstance(fields, dict):
        return "", ""
    amount = fields.get("refund_amount") or fields.get("amount")
    if amount in (None, ""):
        return "", ""
    return str(amount), str(fields.get("currency") or "")


def pretty(value: object) -> str:
    """A nested field as indented JSON (not a Python repr); plain values as they are."""
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


class _Console:
    def __init__(self, notifier: ConsoleNotifier) -> None:
        self.notifier = notifier
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).with_name("_console_templates")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["when"] = when
        self.templates.filters["money"] = money
        self.templates.filters["pretty"] = pretty
        self.app = Starlette(
            routes=[
                Route("/", self.overview, name="overview"),
                Route("/events", self.events, name="events"),
                Route("/events/{event_id}", self.event, name="event"),
                Route("/events/{event_id}/{action}", self.action, name="action", methods=["GET", "POST"]),
            ],
            exception_handlers={BadRequest: self.bad_request, StoreError: self.store_error},
        )
        from paynotify.ops._console_bulk import bulk_routes
        from paynotify.ops._console_expectations import expectation_routes
        from paynotify.ops._console_reconciliation import reconciliation_routes
        from paynotify.ops._console_refusals import refusal_routes
        from paynotify.ops._console_webhooks import webhook_routes

        self.app.router.routes.extend(bulk_routes(self))
        self.app.router.routes.extend(webhook_routes(self))
        self.app.router.routes.extend(reconciliation_routes(self))
        self.app.router.routes.extend(expectation_routes(self))
        self.app.router.routes.extend(refusal_routes(self))
        self.app.router.routes.extend(audit_routes(self))

    @property
    def inline(self) -> bool:
        """Whether the notifier delivers inline (then nothing here takes a requeued event)."""
        return getattr(self.notifier, "delivery", None) == "inline"

    @property
    def actions(self) -> dict[str, _Action]:
        """The actions this console offers: under inline delivery, not Requeue."""
        return {name: a for name, a in ACTIONS.items() if not (self.inline and a.run is _requeue)}

    @property
    def store(self) -> EventLog:
        return self.notifier.store

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        # From this app's own routes, under wherever it is mounted: `request.url_for` would look
        # in the outermost app's routes, where these have no name of their own.
        root = str(request.scope.get("root_path", "")).rstrip("/")

        def url(name: str, query: Mapping[str, str] | None = None, **params: str) -> str:
            path = root + self.app.router.url_path_for(name, **params)
            return f"{path}?{urlencode(query)}" if query else path

        operator: Operator = getattr(request.state, OPERATOR)
        page = self.templates.get_template(template).render(
            url=url,
            css=Markup(STYLE),  # noqa: S704 - our own constant; its hash is in the CSP
            csrf=operator.csrf(),
            signed_in=operator.session is not None,
            request=request,
            **context,
        )
        return HTMLResponse(page, status)

    async def bad_request(self, request: Request, exc: Exception) -> Response:
        return self.render(request, "error.html", 400, title="Bad request", message=str(exc))

    async def store_error(self, request: Request, exc: Exception) -> Response:
        return self.render(request, "error.html", 503, title="The store could not be read", message=str(exc))

    # -- pages -----------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        t = time.time()
        started = time.perf_counter()
        counts = await self.store.count()
        recent = await self.store.find(limit=RECENT)
        window = await self.store.find(created_after=t - CHART_HOURS * 3600, limit=CHART_LIMIT)
        elapsed = time.perf_counter() - started
        per_account: dict[tuple[str, str], Counter[str]] = {}
        for e in recent:
            per_account.setdefault((e.provider, e.account), Counter())[e.state.value] += 1
        bars, tallest, complete_from = _chart(window, t)
        return self.render(
            request,
            "overview.html",
            states=list(EventState),
            counts={state.value: counts.get(state, 0) for state in EventState},
            total=sum(counts.values()),
            recent=len(recent),
            recent_limit=RECENT,
            oldest_recent=recent[-1].created_at if recent else None,
            per_account=sorted(per_account.items()),
            bars=bars,
            tallest=tallest,
            chart_read=len(window),
            chart_limit=CHART_LIMIT,
            complete_from=complete_from,
            accounts=self.notifier.accounts,
            recovered=recovered_counts(self.notifier),
            elapsed_ms=elapsed * 1000,
        )

    async def events(self, request: Request) -> Response:
        params = request.query_params
        filters = Filters.read(params)
        size = _page_size(params)
        before, before_id = _cursor(params)
        args = filters.find_args()
        if before is not None:
            args.update(created_before=before, before_event_id=before_id)
        started = time.perf_counter()
        found = await self.store.find(limit=size + 1, **args)
        elapsed = time.perf_counter() - started
        page, more = found[:size], len(found) > size
        following = None
        if more:
            last = page[-1]
            following = {**filters.query(), "before": repr(last.created_at), "before_id": last.event_id}
            if size != PAGE_SIZE:
                following["limit"] = str(size)
        return self.render(
            request,
            "events.html",
            filters=filters,
            events=page,
            following=following,
            deeper=before is not None,
            states=list(EventState),
            kinds=KINDS,
            accounts=self.notifier.accounts,
            providers=sorted({a.provider.name for a in self.notifier.accounts.values()}),
            actions=self.actions,
            elapsed_ms=elapsed * 1000,
        )

    async def event(self, request: Request) -> Response:
        event = await self._event(request.path_params["event_id"])
        if event is None:
            return self._missing(request)
        context = {**self._describe(event), **await event_history(self, event)}
        return self.render(request, "event.html", **context)

    def _describe(self, event: StoredEvent) -> dict[str, Any]:
        content: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        problem = None
        try:
            entry = event.unhandled() if event.kind == "unhandled" else event.result()
            content = entry.model_dump(mode="json", exclude={"raw"})
            raw = dict(entry.raw)
        except StoreError as exc:
            problem = str(exc)
        offered = {name: a for name, a in self.actions.items() if eligible(a, event)}
        return {"event": event, "content": content, "raw": raw, "problem": problem, "offered": offered}

    async def _event(self, event_id: str) -> StoredEvent | None:
        return await self.store.get(event_id)

    def _missing(self, request: Request) -> Response:
        return self.render(request, "error.html", 404, title="No such event", message="")

    # -- actions: a GET shows what would happen, the POST (with the CSRF token) does it ----------

    def _not_offered(self, request: Request, name: str) -> Response | None:
        """The page of an action this console does not offer (Requeue under inline delivery)."""
        if name not in ACTIONS:
            return self.render(request, "error.html", 404, title="No such action", message="")
        if name not in self.actions:
            return self.render(
                request, "error.html", 409, title="Requeue needs a worker", message=INLINE_REQUEUE
            )
        return None

    async def action(self, request: Request) -> Response:
        action = ACTIONS.get(request.path_params["action"])
        refused = self._not_offered(request, request.path_params["action"])
        if refused is not None or action is None:
            return refused or self._missing(request)
        event_id = request.path_params["event_id"]
        if request.method == "POST":
            refused = await self._refuse_forged(request)
            if refused is not None:
                return refused
            outcome = await self._perform(action, event_id)
            await write_audit(self, request, request.path_params["action"], [outcome])
            after = await self._event(event_id)
            described = self._describe(after) if after is not None else {"event": None}
            return self.render(request, "results.html", action=action, outcomes=[outcome], **described)
        event = await self._event(event_id)
        if event is None:
            return self._missing(request)
        return self.render(
            request,
            "confirm.html",
            action=action,
            name=request.path_params["action"],
            is_eligible=eligible(action, event),
            **self._describe(event),
        )

    async def _perform(self, action: _Action, event_id: str) -> tuple[str, bool, str]:
        try:
            ok = await action.run(self.notifier, event_id)
        except CheckFailed as exc:
            return event_id, False, f"still refused: {exc}"
        except DeliveryFailed as exc:
            return event_id, False, f"a subscriber failed, the event stays for the next attempt: {exc}"
        except PaynotifyError as exc:
            return event_id, False, str(exc)
        if ok:
            return event_id, True, action.done
        return (
            event_id,
            False,
            "not taken: unknown, in flight elsewhere, or in a state this action does not take",
        )

    async def _refuse_forged(
        self, request: Request, form: dict[str, list[str]] | None = None
    ) -> Response | None:
        """A 403 unless the form carries this operator's token (checked before anything else)."""
        # The Origin (or Referer) was checked by the guard, for every POST.
        if form is None:
            form = await read_form(request)
        given = form.get("csrf", [""])[0]
        operator: Operator = getattr(request.state, OPERATOR)
        if operator.accepts(given):
            return None
        return self.render(
            request,
            "error.html",
            403,
            title="Refused: the form's token is not valid",
            message="The page was stale (its form expires after an hour, the session ended, or the "
            "console restarted) or the form did not come from it. "
            "Nothing was changed; reload the page and try again.",
        )
