"""Refusals cost a sender nothing, so their WARNINGs are sampled: the first few per account and
outcome each minute, then one line with how many were left out. The sampler on a fake clock, then
the pipeline's refusal log on real (forged and genuinely signed) requests."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import APP_ID, SECRET, example_notify
from paynotify_alipay.testing import SELLER_ID, generate_key, make_return, public_key_pem
from prometheus_client import CollectorRegistry
from test_delivery import request

from paynotify import InboundRequest, Notifier
from paynotify._refusals import RefusalLog
from paynotify._sampling import Sampler
from paynotify.ops import Instrumentation


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_of_each_key_in_a_window_are_admitted_then_counted_then_reported_once() -> None:
    clock = Clock()
    sampler: Sampler[str] = Sampler(limit=3, window=60.0, clock=clock)
    assert [sampler.admit("a") for _ in range(5)] == [True, True, True, False, False]
    assert sampler.admit("b")  # a key of its own
    assert sampler.expired() == []  # the window is still open
    assert sampler.pending()
    clock.now += 59.9
    assert not sampler.admit("a")
    assert sampler.expired() == []
    clock.now += 0.1
    assert sampler.expired() == [("a", 3)]
    assert sampler.expired() == []  # reported once
    assert not sampler.pending()
    assert sampler.admit("a")  # a fresh window


def test_a_window_that_ends_while_counting_reports_before_the_next_opens() -> None:
    clock = Clock()
    sampler: Sampler[str] = Sampler(limit=1, window=10.0, clock=clock)
    assert [sampler.admit("a") for _ in range(3)] == [True, False, False]
    clock.now += 10
    assert sampler.admit("a")  # the new window's first
    assert sampler.expired() == [("a", 2)]  # the old window's count, not lost


def test_a_zero_limit_logs_nothing_and_counts_everything() -> None:
    clock = Clock()
    sampler: Sampler[str] = Sampler(limit=0, window=1.0, clock=clock)
    assert not any(sampler.admit("a") for _ in range(4))
    clock.now += 1
    assert sampler.expired() == [("a", 4)]
    with pytest.raises(ValueError, match="window"):
        Sampler(limit=1, window=0)


async def wait_for_summary(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    for _ in range(200):  # bounded: 2 s for a 0.05 s window
        summaries = [r for r in caplog.records if "were not logged" in r.getMessage()]
        if summaries:
            return summaries
        await asyncio.sleep(0.01)
    raise AssertionError("no summary line after the window")


async def test_forged_notifications_log_the_first_few_then_one_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    n = Notifier("memory://")
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    n.add_account("other", "examplepay", app_id=APP_ID, secret=SECRET)
    n.pipeline.refusals = RefusalLog(limit=3, window=0.05)
    with caplog.at_level(logging.WARNING, logger="paynotify"):
        for i in range(50):
            await n.handle("shop", request(example_notify(f"o-{i}", secret="forged")))
        await n.handle("other", request(example_notify("o-x", secret="forged")))
        refused = [r for r in caplog.records if r.getMessage().startswith("refused examplepay")]
        assert [getattr(r, "account", None) for r in refused] == ["shop"] * 3 + ["other"]
        (summary,) = await wait_for_summary(caplog)
    assert summary.getMessage().startswith("47 more refused examplepay requests (refused_signature)")
    assert getattr(summary, "account", None) == "shop"
    assert getattr(summary, "outcome", None) == "refused_signature"
    await n.aclose()


async def test_a_forged_sync_return_is_counted_as_a_refused_signature_on_channel_return() -> None:
    key = generate_key()
    app_id = "2021004100000000"
    n = Notifier("memory://")
    n.add_account("shop", "alipay", app_id=app_id, alipay_public_key=public_key_pem(key), seller_id=SELLER_ID)
    registry = CollectorRegistry()
    Instrumentation(registry=registry, tracing=False).attach(n)
    genuine = make_return(key, app_id=app_id, out_trade_no="o-1")
    forged = make_return(generate_key(), app_id=app_id, out_trade_no="o-1")  # another key
    assert (await n.handle("shop", InboundRequest("GET", "return", {}, genuine, b""))).status == 200
    assert (await n.handle("shop", InboundRequest("GET", "return", {}, forged, b""))).status == 400

    def count(channel: str, outcome: str) -> float | None:
        labels = {"provider": "alipay", "account": "shop", "channel": channel, "outcome": outcome}
        return registry.get_sample_value("paynotify_notifications_total", labels)

    # What the documented PaynotifyRefusedSignatures rule selects: outcome="refused_signature".
    assert count("return", "refused_signature") == 1
    assert count("return", "return") == 1
    assert count("notify", "refused_signature") is None
    await n.aclose()
