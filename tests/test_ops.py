"""Watching it in production: a scrape after a mixed run counts each notification where it belongs,
readiness follows the store, spans cover each stage with subscribers inside them, JSON logs carry
the fields and never a secret."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from _store_backends import isolated_url, require
from conftest import APP_ID, SECRET, example_notify
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from paynotify_examplepay import sign
from prometheus_client import CollectorRegistry
from test_multiprocess import CuttableProxy, through

from paynotify import Notifier, Observer, Outcome, PaymentResult
from paynotify.ops import Instrumentation, JsonFormatter, ops_app


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
async def shop() -> AsyncIterator[tuple[Notifier, CollectorRegistry, httpx.AsyncClient]]:
    n = Notifier("memory://")
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    n.add_account("other", "examplepay", app_id="another-app", secret=SECRET)
    registry = CollectorRegistry()
    Instrumentation(registry=registry, tracing=False).attach(n)
    transport = httpx.ASGITransport(app=n.asgi())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield n, registry, client


async def post(client: httpx.AsyncClient, notify: tuple[dict[str, str], bytes], account: str = "shop") -> int:
    headers, body = notify
    return (await client.post(f"/{account}/notify", content=body, headers=headers)).status_code


async def test_a_scrape_counts_every_outcome_where_it_belongs(
    shop: tuple[Notifier, CollectorRegistry, httpx.AsyncClient],
) -> None:
    n, registry, client = shop
    fail_next = {"o-fail"}

    @n.subscribe(name="ship")
    def ship(result: PaymentResult) -> None:
        if result.order_id in fail_next:
            fail_next.discard(result.order_id)
            raise RuntimeError("ledger down")

    for i in range(3):
        await post(client, example_notify(f"o-{i}"))  # delivered x3
    await post(client, example_notify("o-0"))  # duplicate
    await post(client, example_notify("o-x", secret="forged"))  # refused_signature
    signed_garbage = {"x-signature": sign(b"not json", SECRET)}
    await client.post("/shop/notify", content=b"not json", headers=signed_garbage)  # malformed
    await post(client, example_notify("o-r"), account="other")  # rejected_check: app_id mismatch
    await post(client, example_notify("o-fail"))  # delivery_failed
    await post(client, example_notify("o-fail"))  # the resend: delivered
    await post(client, example_notify("o-1"), account="nobody")  # unknown_account
    await client.post("/shop/notify", content=b"x" * (64 * 1024 + 1))  # too_large

    def count(outcome: str, account: str = "shop") -> float:
        provider = "-" if account == "-" else "examplepay"
        channel = "-" if account == "-" else "notify"
        return sample(
            registry,
            "paynotify_notifications_total",
            provider=provider,
            account=account,
            channel=channel,
            outcome=outcome,
        )

    assert count("delivered") == 4
    assert count("duplicate") == 1
    assert count("refused_signature") == 1
    assert count("malformed") == 1
    assert count("rejected_check", account="other") == 1
    assert count("delivery_failed") == 1
    assert count("unknown_account", account="-") == 1
    assert count("too_large", account="-") == 1
    assert sample(registry, "paynotify_subscriber_failures_total", subscriber="ship") == 1
    assert sample(registry, "paynotify_subscriber_seconds_count", subscriber="ship") == 5
    assert sample(registry, "paynotify_verification_seconds_count", provider="examplepay") == 9
    assert sample(registry, "paynotify_handling_seconds_count", provider="examplepay") == 9

    # The store down: the failure reply, counted as such.
    async def down(*args: Any, **kwargs: Any) -> Any:
        from paynotify import StoreError

        raise StoreError("unreachable")

    n.store.claim = down  # type: ignore[method-assign]
    assert await post(client, example_notify("o-down")) != 200  # ExamplePay's failure reply
    assert count("store_unavailable") == 1


async def test_metrics_and_state_gauges_over_http(tmp_path: Path) -> None:
    n = Notifier(f"sqlite:///{tmp_path / 'e.db'}", delivery="queued", dispatcher=False)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    registry = CollectorRegistry()
    instrumentation = Instrumentation(registry=registry, tracing=False).attach(n)
    for i in range(3):
        headers, body = example_notify(f"o-{i}")
        from test_delivery import request

        assert (await n.handle("shop", request((headers, body)))).body == b"OK"
    app = ops_app(n, instrumentation=instrumentation)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as ops:
        text = (await ops.get("/metrics")).text
        assert 'paynotify_events{state="pending"} 3.0' in text
        assert (
            'paynotify_notifications_total{account="shop",channel="notify",outcome="queued",'
            'provider="examplepay"} 3.0' in text
        )
        assert "paynotify_queue_lag_seconds" in text
        assert "o-1" not in text  # no order or event id as a label, ever
        assert (await ops.get("/healthz")).status_code == 200
        assert (await ops.get("/readyz")).text == "ready\n"
    await n.aclose()


async def test_readiness_flips_when_the_database_goes_away_and_back(tmp_path: Path) -> None:
    url = isolated_url("postgresql", tmp_path)
    from urllib.parse import urlsplit

    target = urlsplit(require("postgresql"))
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    n = Notifier(through(url, proxy.port) + "&timeout=0.5&connect_timeout=0.5")
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    app = ops_app(n)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as ops:
        assert (await ops.get("/readyz")).status_code == 200
        await proxy.cut()
        down = await ops.get("/readyz")
        assert down.status_code == 503
        assert down.text.startswith("not ready: ")
        # Unauthenticated: where the store is (host, port, database, schema) is for the log only.
        for secret_ish in ("127.0.0.1", str(proxy.port), "/test", "pn_test_"):
            assert secret_ish not in down.text
        assert (await ops.get("/healthz")).status_code == 200  # alive all the same
        await proxy.restore()
        assert (await ops.get("/readyz")).status_code == 200
    await n.aclose()
    await proxy.cut()


async def test_readiness_needs_accounts() -> None:
    app = ops_app(Notifier("memory://"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as ops:
        reply = await ops.get("/readyz")
    assert (reply.status_code, reply.text) == (503, "not ready: no accounts are configured\n")


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The global provider can be set once per process: later tests reuse it and clear the exporter.
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
        _EXPORTERS.append(exporter)
    found = _EXPORTERS[0]
    found.clear()
    return found


_EXPORTERS: list[InMemorySpanExporter] = []


async def test_one_span_per_notification_with_each_stage_and_the_subscriber_inside(
    spans: InMemorySpanExporter,
) -> None:
    n = Notifier("memory://")
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    Instrumentation(registry=CollectorRegistry()).attach(n)
    inside: list[str] = []

    @n.subscribe
    async def ship(result: PaymentResult) -> None:
        with trace.get_tracer("shop").start_as_current_span("orders.mark_paid") as own:
            inside.append(format(own.get_span_context().trace_id, "032x"))

    from test_delivery import request

    assert (await n.handle("shop", request(example_notify("o-1")))).body == b"OK"
    finished = {s.name: s for s in spans.get_finished_spans()}
    root = finished["paynotify.notification"]
    assert root.attributes is not None
    assert root.attributes["paynotify.provider"] == "examplepay"
    assert root.attributes["paynotify.account"] == "shop"
    assert root.attributes["paynotify.outcome"] == "delivered"
    assert len(str(root.attributes["paynotify.event_id"])) == 32
    for child in (
        "paynotify.verify",
        "paynotify.store.claim",
        "paynotify.subscriber",
        "paynotify.store.complete",
    ):
        assert finished[child].parent is not None
        assert finished[child].context.trace_id == root.context.trace_id
    # The subscriber's own span joins the trace, under paynotify.subscriber.
    assert inside == [format(root.context.trace_id, "032x")]
    assert finished["orders.mark_paid"].parent.span_id == finished["paynotify.subscriber"].context.span_id  # type: ignore[union-attr]


def test_json_logs_carry_the_fields_and_never_a_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("paynotify")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        import asyncio

        from test_delivery import request

        async def run() -> None:
            n = Notifier("memory://")
            n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
            n.subscribe(lambda r: None, name="noop")
            await n.handle("shop", request(example_notify("o-1")))
            await n.handle("shop", request(example_notify("o-2", secret="wrong-" + SECRET)))

        asyncio.run(run())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    delivered = next(line for line in lines if line.get("outcome") == "delivered")
    assert (delivered["account"], delivered["provider"], len(delivered["event_id"])) == (
        "shop",
        "examplepay",
        32,
    )
    refused = next(line for line in lines if line.get("outcome") == "refused_signature")
    assert refused["level"] == "WARNING"
    assert refused["cause"]
    assert SECRET not in stream.getvalue()


class _Recording(Observer):
    """An observer that records which seams the pipeline called."""

    def __init__(self, tracing: bool) -> None:
        self.tracing = tracing
        self.calls: list[str] = []

    def notification(self, provider: str, account: str, outcome: Outcome, seconds: float) -> None:
        self.calls.append(f"notification:{outcome.value}")

    def verification(self, provider: str, seconds: float) -> None:
        self.calls.append("verification")

    def subscriber(self, name: str, seconds: float, *, failed: bool) -> None:
        self.calls.append(f"subscriber:{name}:{'failed' if failed else 'ok'}")

    def stage(self, name: str, attributes: Mapping[str, str] | None = None) -> AbstractContextManager[Any]:
        self.calls.append(f"stage:{name}")
        return contextlib.nullcontext()

    def annotate(self, attributes: Mapping[str, str]) -> None:
        self.calls.append("annotate:" + ",".join(attributes))


@pytest.mark.parametrize("tracing", [False, True])
async def test_stages_are_opened_only_while_the_observer_traces(tracing: bool) -> None:
    from test_delivery import request

    n = Notifier("memory://")
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    observer = _Recording(tracing)
    n.observe(observer)
    n.subscribe(lambda result: None, name="ship")
    assert (await n.handle("shop", request(example_notify("o-1")))).body == b"OK"
    timings = ["verification", "subscriber:ship:ok", "notification:delivered"]
    if not tracing:
        assert observer.calls == timings
    else:
        assert observer.calls == [
            "stage:paynotify.notification",
            "stage:paynotify.verify",
            "verification",
            "annotate:paynotify.event_id",
            "stage:paynotify.store.claim",
            "stage:paynotify.subscriber",
            "subscriber:ship:ok",
            "stage:paynotify.store.complete",
            "annotate:paynotify.outcome",
            "notification:delivered",
        ]


def test_spans_begin_once_an_sdk_is_installed_after_attach(tmp_path: Path) -> None:
    # Its own process: the global tracer provider can be set only once, and here it must start unset.
    script = tmp_path / "late_sdk.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            sys.path[:0] = [sys.argv[1]]
            from conftest import APP_ID, SECRET, example_notify
            from test_delivery import request
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            from prometheus_client import CollectorRegistry
            from paynotify import Notifier
            from paynotify.ops import Instrumentation

            async def main():
                n = Notifier("memory://")
                n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
                watch = Instrumentation(registry=CollectorRegistry()).attach(n)
                await n.handle("shop", request(example_notify("o-1")))
                print("before", watch.tracing)
                exporter = InMemorySpanExporter()
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                watch._live_checked -= 2.0  # as if a second went by
                await n.handle("shop", request(example_notify("o-2")))  # notices the SDK at its end
                await n.handle("shop", request(example_notify("o-3")))
                print("after", watch.tracing, sorted({s.name for s in exporter.get_finished_spans()}))

            asyncio.run(main())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.splitlines()
    assert before == "before False"
    assert after == (
        "after True ['paynotify.notification', 'paynotify.store.claim', 'paynotify.store.complete', "
        "'paynotify.verify']"
    )


async def test_readiness_names_no_host_database_or_schema(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A PostgreSQL server nobody listens for, and a SQLite file in a directory that is not there.
    schema = "pn_secret_schema"
    for url, private in [
        (
            f"postgresql://pn-user@127.0.0.1:9/pn_secret_db?schema={schema}&connect_timeout=0.3",
            "pn_secret_db",
        ),
        (f"sqlite:///{tmp_path}/missing-dir/pn-secret.db", "pn-secret"),
    ]:
        n = Notifier(url)
        n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
        app = ops_app(n)
        with caplog.at_level(logging.WARNING, logger="paynotify.ops"):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ops"
            ) as ops:
                reply = await ops.get("/readyz")
        assert (reply.status_code, reply.text) == (503, "not ready: store unreachable\n")
        assert reply.headers["cache-control"] == "no-store"
        for name in (private, "127.0.0.1", schema, str(tmp_path)):
            assert name not in reply.text
        # The operator still learns why, from the log.
        assert "store is unreachable" in caplog.text
        caplog.clear()
        await n.aclose()
