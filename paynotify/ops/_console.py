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

import base64
import hashlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paynotify._errors import CheckFailed, DeliveryFailed, PaynotifyError, StoreError
from paynotify._provider import Account
from paynotify._stores.base import REPLAYABLE, RETRYABLE, EventLog, EventState, StoredEvent
from paynotify.ops._auth import Authenticator, CsrfTokens, resolve

__all__ = ["ConsoleNotifier", "console_app"]

PAGE_SIZE = 50
PAGE_MAX = 200
RECENT = 1000
"""The overview's per-account table counts the states of this many most recently created events."""
CHART_HOURS = 24
CHART_LIMIT = 5000
"""The chart reads at most this many events of the last 24 hours (newest first); past it, the
hours before the oldest one read are drawn as not counted, never as quiet."""
BULK_LIMIT = 500
"""A selection acts on at most this many events per confirmation (newest first)."""
FORM_LIMIT = 64 * 1024
KINDS = ("payment", "refund", "transfer", "unhandled")

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#cfe0ff;text-decoration:none}header strong{font-size:1.1em}
main{padding:1em 1.2em;max-width:80em}
h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;margin:.3em 0}
th,td{border:1px solid #dde1e7;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}td.t{white-space:nowrap}
code,.mono{font-family:ui-monospace,monospace;font-size:.92em;word-break:break-all}th.mono{word-break:normal}
.state{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.88em;background:#e4e7ec}
.s-done{background:#d7f2dd}.s-dead{background:#f8d0d0}.s-rejected{background:#fbe3c4}
.s-pending,.s-in_flight{background:#d8e6fb}.s-released{background:#efe1fb}.s-unhandled{background:#e8e8e8}
form.filters{display:flex;flex-wrap:wrap;gap:.6em;align-items:end;background:#fff;padding:.7em;
border:1px solid #dde1e7}
form.filters label{display:flex;flex-direction:column;font-size:.85em;gap:.15em}
input,select,button{font:inherit;padding:.2em .35em}
button,a.button{background:#2455c3;color:#fff;border:0;border-radius:3px;padding:.3em .8em;
text-decoration:none;display:inline-block;cursor:pointer}
a.button.secondary{background:#5b6472}button.danger{background:#b3261e}
.actions{display:flex;gap:.5em;margin:.6em 0}.note{color:#5b6472;font-size:.9em}
.error{background:#fde7e7;border:1px solid #f2b8b5;padding:.5em .8em}
.ok{background:#e3f6e7;border:1px solid #a8dcb4;padding:.5em .8em}
svg text{font:11px system-ui,sans-serif;fill:#5b6472}svg .bar{fill:#2455c3}svg .uncounted{fill:#e4e7ec}
svg .axis{stroke:#9aa3b0}
"""
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
_IDENTITY = "paynotify_console_identity"


class ConsoleNotifier(Protocol):
    """What the console needs of a `Notifier`."""

    @property
    def store(self) -> EventLog: ...
    @property
    def accounts(self) -> Mapping[str, Account[Any]]: ...
    async def redeliver(self, event_id: str, *, replay: bool = False) -> bool: ...


def console_app(notifier: ConsoleNotifier, *, auth: object, csrf_secret: bytes | None = None) -> ASGIApp:
    """The console as an ASGI app, to mount (e.g. at `/console`).

    `auth`: `BearerToken`, `BasicAuth` (see their `from_env` / `from_file`), a token string, or a
    callable `(request) -> bool`; without one, `ConfigurationError`. `csrf_secret`: share one
    between processes serving the same console (by default each process draws its own).
    """
    authenticator = resolve(auth)
    console = _Console(notifier, CsrfTokens(csrf_secret))
    return _Guard(console.app, authenticator)


class _Guard:
    """Authentication and the security headers, around every response (a 401 and a 404 too)."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets here: the connection is refused

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        identity = await self.auth.identify(Request(scope))
        if identity is None:
            refused = PlainTextResponse(
                "authentication required\n", 401, headers={"www-authenticate": self.auth.challenge}
            )
            await refused(scope, receive, secured)
            return
        scope = {**scope, "state": {**scope.get("state", {}), _IDENTITY: identity}}
        await self.app(scope, receive, secured)


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


class BadRequest(Exception):
    """A filter or form the console cannot read; the message is shown (escaped) with a 400."""


@dataclass(frozen=True)
class Filters:
    account: str = ""
    provider: str = ""
    kind: str = ""
    state: str = ""
    order_id: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def read(cls, params: Mapping[str, str]) -> Filters:
        found = cls(**{f.name: params.get(f.name, "").strip() for f in fields(cls)})
        if any("\x00" in getattr(found, f.name) for f in fields(cls)):
            raise BadRequest("a filter holds a NUL character, which no event has")
        if found.state and found.state not in EventState._value2member_map_:
            raise BadRequest(f"unknown state {found.state!r}")
        if found.kind and found.kind not in KINDS:
            raise BadRequest(f"unknown kind {found.kind!r}")
        found.window()  # refuse a time that does not parse now, not halfway through a page
        return found

    def window(self) -> tuple[float | None, float | None]:
        return _instant(self.since, "since"), _instant(self.until, "until")

    def query(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def find_args(self, states: frozenset[EventState] | None = None) -> dict[str, Any]:
        since, until = self.window()
        wanted = {EventState(self.state)} if self.state else None
        if states is not None:
            wanted = set(states) if wanted is None else wanted & states
        return {
            "account": self.account or None,
            "provider": self.provider or None,
            "kind": self.kind or None,
            "order_id": self.order_id or None,
            "states": wanted,
            "created_after": since,
            "created_before": until,
        }


def _instant(text: str, name: str) -> float | None:
    """A `datetime-local` field's value, read as UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _cursor(params: Mapping[str, str]) -> tuple[float | None, str | None]:
    before, before_id = params.get("before", ""), params.get("before_id", "")
    if "\x00" in before_id:
        raise BadRequest("before_id holds a NUL character")
    if not before:
        return None, None
    try:
        t = float(before)
    except ValueError:
        raise BadRequest(f"before: {before!r} is not a time") from None
    if not math.isfinite(t):
        raise BadRequest(f"before: {before!r} is not a time")
    return t, before_id or None


def _page_size(params: Mapping[str, str]) -> int:
    text = params.get("limit", "") or str(PAGE_SIZE)
    if not text.isdigit() or not 1 <= int(text) <= PAGE_MAX:
        raise BadRequest(f"limit: a number from 1 to {PAGE_MAX}")
    return int(text)


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


class _Console:
    def __init__(self, notifier: ConsoleNotifier, csrf: CsrfTokens) -> None:
        self.notifier, self.csrf = notifier, csrf
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).with_name("_console_templates")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["when"] = when
        self.app = Starlette(
            routes=[
                Route("/", self.overview, name="overview"),
                Route("/events", self.events, name="events"),
                Route("/events/{event_id}", self.event, name="event"),
                Route("/events/{event_id}/{action}", self.action, name="action", methods=["GET", "POST"]),
                Route("/bulk/{action}", self.bulk, name="bulk", methods=["GET", "POST"]),
            ],
            exception_handlers={BadRequest: self.bad_request, StoreError: self.store_error},
        )
        from paynotify.ops._console_webhooks import webhook_routes

        self.app.router.routes.extend(webhook_routes(self))

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

        identity: str = getattr(request.state, _IDENTITY)
        page = self.templates.get_template(template).render(
            url=url,
            css=Markup(_CSS),  # noqa: S704 - our own constant; its hash is in the CSP
            csrf=self.csrf.token(identity),
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
            actions=ACTIONS,
            elapsed_ms=elapsed * 1000,
        )

    async def event(self, request: Request) -> Response:
        event = await self._event(request.path_params["event_id"])
        if event is None:
            return self._missing(request)
        return self.render(request, "event.html", **self._describe(event))

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
        offered = {name: a for name, a in ACTIONS.items() if eligible(a, event)}
        return {"event": event, "content": content, "raw": raw, "problem": problem, "offered": offered}

    async def _event(self, event_id: str) -> StoredEvent | None:
        return await self.store.get(event_id)

    def _missing(self, request: Request) -> Response:
        return self.render(request, "error.html", 404, title="No such event", message="")

    # -- actions: a GET shows what would happen, the POST (with the CSRF token) does it ----------

    async def action(self, request: Request) -> Response:
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            return self.render(request, "error.html", 404, title="No such action", message="")
        event_id = request.path_params["event_id"]
        if request.method == "POST":
            refused = await self._refuse_forged(request)
            if refused is not None:
                return refused
            outcome = await self._perform(action, event_id)
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

    async def bulk(self, request: Request) -> Response:
        name = request.path_params["action"]
        action = ACTIONS.get(name)
        if action is None:
            return self.render(request, "error.html", 404, title="No such action", message="")
        if request.method == "POST":
            form = await self._form(request)
            refused = await self._refuse_forged(request, form)
            if refused is not None:
                return refused
            ids = form.get("id", [])[:BULK_LIMIT]
            outcomes = [await self._perform(action, event_id) for event_id in ids]
            return self.render(request, "results.html", action=action, outcomes=outcomes, event=None)
        filters = Filters.read(request.query_params)
        chosen = await self.store.find(limit=BULK_LIMIT + 1, **filters.find_args(action.takes))
        chosen = [e for e in chosen if eligible(action, e)]
        return self.render(
            request,
            "bulk.html",
            action=action,
            name=name,
            filters=filters,
            events=chosen[:BULK_LIMIT],
            more=len(chosen) > BULK_LIMIT,
            limit=BULK_LIMIT,
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

    async def _form(self, request: Request) -> dict[str, list[str]]:
        if (
            request.headers.get("content-type", "").split(";")[0].strip()
            != "application/x-www-form-urlencoded"
        ):
            raise BadRequest("a form was expected")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_LIMIT:
                raise BadRequest("the form is too large")
        try:
            return parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise BadRequest("the form is not UTF-8") from None

    async def _refuse_forged(
        self, request: Request, form: dict[str, list[str]] | None = None
    ) -> Response | None:
        """A 403 unless the form carries this operator's token (checked before anything else)."""
        if form is None:
            form = await self._form(request)
        given = form.get("csrf", [""])[0]
        if self.csrf.valid(getattr(request.state, _IDENTITY), given):
            return None
        return self.render(
            request,
            "error.html",
            403,
            title="Refused: the form's token is not valid",
            message="The page was stale (the console restarted) or the form did not come from it. "
            "Nothing was changed; reload the page and try again.",
        )
