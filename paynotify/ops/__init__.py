"""Watching paynotify in production: metrics, traces, health, structured logs.

    from paynotify.ops import Instrumentation, ops_app

    instrumentation = Instrumentation().attach(notifier)       # prometheus_client + OpenTelemetry
    app = ops_app(notifier, instrumentation=instrumentation)   # /healthz /readyz /metrics

Needs the `ops` extra (`pip install 'paynotify[ops]'`). Built on the core's public seams (the
`Observer`, the store's `EventLog`), as any other package could be.
"""

from paynotify.ops._app import READY_TIMEOUT, ops_app
from paynotify.ops._instrument import Instrumentation
from paynotify.ops._logging import FIELDS, JsonFormatter

__all__ = ["FIELDS", "READY_TIMEOUT", "Instrumentation", "JsonFormatter", "ops_app"]
