"""Metrics of each webhook endpoint, read from its publisher when scraped: attempts, failures,
a latency histogram and the endpoint's state (healthy, failing, open, disabled).

Labelled by endpoint name only (configuration, never a URL, which may carry a token).
`Instrumentation.attach(notifier)` registers it; `WebhookMetrics(notifier).register(registry)`
does it by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["WebhookMetrics"]


class WebhookMetrics:
    """A prometheus_client custom collector over the WebhookPublishers of one Notifier."""

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier

    def register(self, registry: Any) -> WebhookMetrics:
        registry.register(self)
        return self

    def describe(self) -> list[Any]:
        return []  # no names claimed up front: several Notifiers may share a registry

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        from paynotify.publishers import LATENCY_BUCKETS, EndpointState, webhook_publishers

        hooks = webhook_publishers(self.notifier)
        if not hooks:
            return
        attempts = CounterMetricFamily("paynotify_webhook_attempts", "POSTs made", labels=["endpoint"])
        failures = CounterMetricFamily(
            "paynotify_webhook_failures", "POSTs without a timely 2xx", labels=["endpoint"]
        )
        seconds = HistogramMetricFamily(
            "paynotify_webhook_seconds", "Time an endpoint took to answer", labels=["endpoint"]
        )
        state = GaugeMetricFamily(
            "paynotify_webhook_state", "1 for the endpoint's current state", labels=["endpoint", "state"]
        )
        for hook in hooks:
            stats = hook.stats
            attempts.add_metric([hook.endpoint], stats.attempts)
            failures.add_metric([hook.endpoint], stats.failures)
            running, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), stats.latency, strict=True):
                running += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", running))
            seconds.add_metric([hook.endpoint], buckets, stats.latency_sum)
            for each in EndpointState:
                state.add_metric([hook.endpoint, each.value], 1.0 if hook.state is each else 0.0)
        yield from (attempts, failures, seconds, state)
