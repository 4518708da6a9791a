"""Watching paynotify in production: metrics, traces, health, structured logs, the operator console.

    from paynotify.ops import BearerToken, Instrumentation, console_app, ops_app

    instrumentation = Instrumentation().attach(notifier)       # prometheus_client + OpenTelemetry
    console = console_app(notifier, auth=BearerToken.from_env("PAYNOTIFY_CONSOLE_TOKEN"))
    app = ops_app(notifier, instrumentation=instrumentation, console=console)
    # /healthz /readyz /metrics /console

Needs the `ops` extra (metrics, traces) and `console` (the console's templates). Built on the
core's public seams (the `Observer`, the store's `EventLog`), as any other package could be.
"""

from paynotify.ops._app import READY_TIMEOUT, ops_app
from paynotify.ops._auth import BasicAuth, BearerToken
from paynotify.ops._instrument import Instrumentation
from paynotify.ops._logging import FIELDS, JsonFormatter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from paynotify.ops._console import console_app

__all__ = [
    "FIELDS",
    "READY_TIMEOUT",
    "BasicAuth",
    "BearerToken",
    "Instrumentation",
    "JsonFormatter",
    "console_app",
    "ops_app",
]


def __getattr__(name: str) -> object:
    # The console needs jinja2 (the `console` extra): imported when asked for, so metrics and
    # health work with the `ops` extra alone.
    if name == "console_app":
        from paynotify.ops._console import console_app

        return console_app
    raise AttributeError(f"module 'paynotify.ops' has no attribute {name!r}")
