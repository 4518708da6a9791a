"""Metrics (prometheus_client) and traces (OpenTelemetry) of a Notifier, through its `Observer` seam.

    instrumentation = Instrumentation(registry=my_registry)      # prometheus_client registry
    instrumentation.attach(notifier)

No label ever holds an order or event id: provider, account, channel, outcome, subscriber and state only,
all from configuration, never from the request. Spans are made only when an OpenTelemetry SDK is
configured (`trace.set_tracer_provider`); with the API alone nothing is recorded or exported.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from paynotify import ConfigurationError, EventLog, EventState, Observer, Outcome, Store

__all__ = ["Instrumentation"]

# Notification handling is well under a millisecond on the memory store and a few on a database;
# a provider gives up after 5 s (WeChat) to 15 s.
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Histogram(dict[str, list[float]]):
    """label -> bucket counts, then the sum, in plain Python: every observation happens on the
    Notifier's event loop, so no lock is needed, and prometheus_client's locked child objects cost
    ~1.5 us an observation."""

    def __missing__(self, label: str) -> list[float]:
        counts = self[label] = [0] * (len(_SECONDS) + 2)
        return counts


class Instrumentation(Observer):
    """Prometheus metrics and OpenTelemetry spans for one Notifier (`attach`); `refresh` before a scrape.

    `registry` is a `prometheus_client.CollectorRegistry` (default: the global one); `metrics=False`
    or `tracing=False` turns either off. Store state counts are read at most every
    `state_cache_seconds`, so a scrape never scans a large table. Counting happens in plain Python
    on the request path; the metric families are built when scraped.
    """

    def __init__(
        self,
        *,
        registry: Any = None,
        metrics: bool = True,
        tracing: bool = True,
        state_cache_seconds: float = 5.0,
    ) -> None:
        self.state_cache_seconds = state_cache_seconds
        self._counted_at = -1e18
        self._metrics = metrics
        self._tracing = tracing
        self._live_checked = -1e18
        self.notifications: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        self.queries: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.recoveries: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.handling = _Histogram()
        self.verifying = _Histogram()
        self.subscriber_seconds = _Histogram()
        self.subscriber_failures: dict[str, int] = {}
        self.states: dict[str, int] = {}
        self.discrepancies: dict[tuple[str, str], int] = {}
        """(account, kind) -> discrepancies still open in the account's latest stored report."""
        self.lag = 0.0
        if metrics:
            self._register(registry)
        if tracing:
            try:
                from opentelemetry import trace
            except ImportError as exc:
                missing = "tracing needs opentelemetry-api: pip install 'paynotify[ops]'"
                raise ConfigurationError(missing) from exc
            self._trace = trace
            self._tracer = trace.get_tracer("paynotify")
            self._refresh_tracing()

    def _register(self, registry: Any) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ConfigurationError("metrics need prometheus_client: pip install 'paynotify[ops]'") from exc
        self.registry = registry if registry is not None else prom.REGISTRY
        self.registry.register(_Collector(self))

    def attach(self, notifier: Any) -> Instrumentation:
        """Observe `notifier` (a `paynotify.Notifier`) from now on; returns self."""
        notifier.observe(self)
        if self._metrics:  # its webhook endpoints' metrics too (none: nothing is exported)
            from paynotify.ops._webhook_metrics import WebhookMetrics

            WebhookMetrics(notifier).register(self.registry)
        return self

    # -- Observer --------------------------------------------------------------------------------

    # The histograms' observations are written out in each method: a call each would cost more
    # than the counting (these run on every notification; bench.ops measures them).

    def notification(self, provider: str, account: str, outcome: Outcome, seconds: float) -> None:
        self.answered(provider, account, "-", outcome, seconds)

    def answered(self, provider: str, account: str, channel: str, outcome: Outcome, seconds: float) -> None:
        if self._tracing and time.monotonic() - self._live_checked > 1.0:
            self._refresh_tracing()
        if self._metrics:
            self.notifications[provider, account, channel, outcome._value_] += 1
            if provider != "-":
                counts = self.handling[provider]
                counts[bisect_left(_SECONDS, seconds)] += 1
                counts[-1] += seconds

    def query(self, provider: str, account: str, outcome: Outcome, seconds: float) -> None:
        if self._metrics:
            self.queries[provider, account, outcome._value_] += 1

    def recovered(self, provider: str, account: str) -> None:
        if self._metrics:
            self.recoveries[provider, account] += 1

    def recovered_counts(self) -> dict[str, int]:
        """account -> `paynotify_recovered_total` of this process (what the sweeper's questions
        were first with since start), for the console."""
        counts: dict[str, int] = {}
        for (_provider, account), value in list(self.recoveries.items()):
            counts[account] = counts.get(account, 0) + value
        return counts

    def verification(self, provider: str, seconds: float) -> None:
        if self._metrics:
            counts = self.verifying[provider]
            counts[bisect_left(_SECONDS, seconds)] += 1
            counts[-1] += seconds

    def subscriber(self, name: str, seconds: float, *, failed: bool) -> None:
        if self._metrics:
            counts = self.subscriber_seconds[name]
            counts[bisect_left(_SECONDS, seconds)] += 1
            counts[-1] += seconds
            if failed:
                self.subscriber_failures[name] = self.subscriber_failures.get(name, 0) + 1

    def stage(self, name: str, attributes: Mapping[str, str] | None = None) -> AbstractContextManager[Any]:
        return self._tracer.start_as_current_span(name, attributes=dict(attributes or {}))

    def annotate(self, attributes: Mapping[str, str]) -> None:
        span = self._trace.get_current_span()
        if span.is_recording():
            span.set_attributes(dict(attributes))

    def _refresh_tracing(self) -> None:
        """`tracing` turns true once the application installed an SDK (before that, spans would
        only cost time). Looked up after a notification at most once a second, as the lookup costs
        more than a notification's metrics: the first traced notification may come a second late."""
        self._live_checked = time.monotonic()
        self.tracing = not isinstance(self._trace.get_tracer_provider(), self._trace.ProxyTracerProvider)

    # -- what a scrape reads from the store ------------------------------------------------------

    async def refresh(self, store: EventLog) -> None:
        """Update the state gauges from `store`, unless they were read less than
        `state_cache_seconds` ago (then this costs nothing)."""
        if not self._metrics or time.monotonic() - self._counted_at < self.state_cache_seconds:
            return
        counts = await store.count()
        oldest = await store.oldest_due()
        discrepancies = await _discrepancies(store)
        self._counted_at = time.monotonic()
        self.states = {state.value: counts.get(state, 0) for state in EventState}
        self.lag = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        if discrepancies is not None:
            self.discrepancies = discrepancies


async def _discrepancies(store: EventLog) -> dict[tuple[str, str], int] | None:
    """(account, kind) -> open discrepancies of each account's latest report; None for a store
    that keeps no reports. Summaries only: the reports' JSON is not read."""
    if not isinstance(store, Store):
        return None
    try:
        reports = store.reconciliations
    except NotImplementedError:
        return None
    return {
        (report.account, kind): count
        for report in await reports.latest_reports()
        for kind, count in sorted(report.open_counts.items())
    }


class _Collector:
    """prometheus_client's custom-collector protocol: the families, built when scraped."""

    def __init__(self, source: Instrumentation) -> None:
        self.source = source

    def describe(self) -> list[Any]:
        return []  # no names claimed up front: several Notifiers may share a registry's names

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        src = self.source
        notifications = CounterMetricFamily(
            "paynotify_notifications",
            "HTTP deliveries by channel and outcome",
            labels=["provider", "account", "channel", "outcome"],
        )
        for labels, value in list(src.notifications.items()):
            notifications.add_metric(list(labels), value)
        yield notifications
        queries = CounterMetricFamily(
            "paynotify_queries",
            "Queries of a provider's API by outcome",
            labels=["provider", "account", "outcome"],
        )
        for query_labels, value in list(src.queries.items()):
            queries.add_metric(list(query_labels), value)
        yield queries
        recovered = CounterMetricFamily(
            "paynotify_recovered",
            "Final states the sweeper's questions were first with (their notification had not come)",
            labels=["provider", "account"],
        )
        for pair, value in list(src.recoveries.items()):
            recovered.add_metric(list(pair), value)
        yield recovered
        for name, doc, label, histogram in (
            ("paynotify_handling_seconds", "Time to answer a notification", "provider", src.handling),
            ("paynotify_verification_seconds", "Time to verify and normalize", "provider", src.verifying),
            ("paynotify_subscriber_seconds", "Time a subscriber took on an event", "subscriber",
             src.subscriber_seconds),
        ):  # fmt: skip
            family = HistogramMetricFamily(name, doc, labels=[label])
            for key, counts in list(histogram.items()):
                running, buckets = 0, []
                for bound, count in zip((*_SECONDS, float("inf")), counts[:-1], strict=True):
                    running += int(count)
                    buckets.append((str(bound) if bound != float("inf") else "+Inf", running))
                family.add_metric([key], buckets, counts[-1])
            yield family
        failures = CounterMetricFamily(
            "paynotify_subscriber_failures", "Subscriber calls that raised", labels=["subscriber"]
        )
        for name_, value in list(src.subscriber_failures.items()):
            failures.add_metric([name_], value)
        yield failures
        events = GaugeMetricFamily("paynotify_events", "Recorded events by state (cached)", labels=["state"])
        for state, value in src.states.items():
            events.add_metric([state], value)
        yield events
        discrepancies = GaugeMetricFamily(
            "paynotify_reconciliation_discrepancies",
            "Discrepancies still open in each account's latest reconciliation report, by kind (cached)",
            labels=["account", "kind"],
        )
        for pair, value in list(src.discrepancies.items()):
            discrepancies.add_metric(list(pair), value)
        yield discrepancies
        yield GaugeMetricFamily(
            "paynotify_queue_lag_seconds",
            "Age of the longest-waiting due event (queued delivery)",
            value=src.lag,
        )
        yield GaugeMetricFamily(
            "paynotify_dead_letters", "Events queued delivery gave up on", value=src.states.get("dead", 0)
        )
