"""Expectations and the sweeper (issue 21), against the WeChat Pay v2 emulator, on every store: a
dropped notification is recovered exactly once, a late one is not delivered again, a notification
closes its expectation, two sweepers never ask about one expectation at once, the schedule, the
backoff while the provider is down, expiry past `until`, and the per-account rate bound."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from _store_backends import BACKENDS, drop, isolated_url
from paynotify_wechatpay.testing import WeChatPayV2Emulator

from paynotify import (
    ConfigurationError,
    ExpectationState,
    ExpectationStore,
    MemoryStore,
    Notifier,
    PaymentResult,
    Store,
)
from paynotify.recovery import EmulatorTransport, Sweeper

ACK = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
SHARED = ["sqlite", "postgresql", "redis"]


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def past_first_due(self) -> None:
        """Just past the first question's due time: `expect` dates it from the real clock
        (`first_query_after`, 60 s), and a store's setup may take seconds on a loaded machine."""
        self.t = max(self.t, time.time()) + 61


@dataclass
class Counting:
    """The emulator behind a counter: every HTTP request that reaches it, and how many at once."""

    emu: WeChatPayV2Emulator
    pause: float = 0.0
    hits: list[str] = field(default_factory=list)
    active: Counter[str] = field(default_factory=Counter)
    overlaps: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:  # the body, to see which order is asked about
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        found = re.search(rb"<out_trade_no>(?:<!\[CDATA\[)?([^<\]]*)", body)
        asked = found.group(1).decode() if found else "-"
        self.hits.append(asked)
        self.active[asked] += 1
        self.overlaps += self.active[asked] > 1
        try:
            if self.pause:
                await asyncio.sleep(self.pause)
            sent = False

            async def again() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.emu(scope, again, send)
        finally:
            self.active[asked] -= 1


@dataclass
class Shop:
    notifier: Notifier
    emu: WeChatPayV2Emulator
    api: Counting
    delivered: list[PaymentResult]
    client: httpx.AsyncClient

    async def notify(self, order_id: str) -> bytes:
        body = self.emu.notification(order=order_id)
        response = await self.client.post("/shop/notify", content=body, headers={"content-type": "text/xml"})
        return response.content


@asynccontextmanager
async def shop(url: str, emu: WeChatPayV2Emulator | None = None, **options: Any) -> AsyncIterator[Shop]:
    emu = emu or WeChatPayV2Emulator()
    api = Counting(emu)
    notifier = Notifier(url, api_transport=EmulatorTransport({"wechatpay-v2.emulator": api}), **options)
    notifier.add_account("shop", "wechatpay-v2", **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with notifier, httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as client:
        yield Shop(notifier, emu, api, delivered, client)


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    url = isolated_url(request.param, tmp_path)
    yield url
    await drop(request.param, url)


def sweeper(s: Shop, clock: Clock, **kwargs: Any) -> Sweeper:
    return Sweeper(s.notifier.store, s.notifier.query, clock=clock, **kwargs)


async def state(s: Shop, order_id: str) -> tuple[ExpectationState, str | None]:
    record = await s.notifier.store.expectations.get("shop", order_id)
    assert record is not None
    return record.state, record.outcome


async def test_a_dropped_notification_is_recovered_once_and_its_late_copy_not_again(store_url: str) -> None:
    clock = Clock()
    async with shop(store_url) as s:
        s.emu.pay("order-1", total_fee=8888)  # paid; its notification never arrives
        await s.notifier.expect("shop", "order-1", amount="88.88", until=timedelta(hours=24))
        sweep = sweeper(s, clock)
        assert (await sweep.run_once()).asked == []  # not due before the first minute
        clock.past_first_due()
        first = await sweep.run_once()
        assert first.recovered == [("shop", "order-1", None)]
        assert [(r.order_id, r.source.value) for r in s.delivered] == [("order-1", "query")]
        assert await state(s, "order-1") == (ExpectationState.SETTLED, "succeeded")
        clock.t += 7200
        assert (await sweep.run_once()).asked == []  # settled: never asked again
        assert await s.notify("order-1") == ACK  # the late notification: acknowledged, a duplicate
        assert len(s.delivered) == 1
        assert s.api.hits == ["order-1"]


async def test_a_notification_settles_its_expectation_and_no_question_follows(store_url: str) -> None:
    clock = Clock()
    async with shop(store_url) as s:
        s.emu.pay("order-1")
        await s.notifier.expect("shop", "order-1", amount="88.88", until=timedelta(hours=24))
        assert await s.notify("order-1") == ACK
        assert await state(s, "order-1") == (ExpectationState.SETTLED, "succeeded")
        clock.t += 7200
        assert (await sweeper(s, clock).run_once()).asked == []
        assert s.api.hits == []
        assert len(s.delivered) == 1


@pytest.mark.parametrize("backend", SHARED)
async def test_two_sweepers_on_one_store_never_ask_about_one_expectation_at_once(
    backend: str, tmp_path: Path
) -> None:
    url = isolated_url(backend, tmp_path)
    emu = WeChatPayV2Emulator()
    orders = [f"order-{i}" for i in range(12)]
    clock = Clock()
    try:
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(shop(url, emu))
            b = await stack.enter_async_context(shop(url, emu))
            for order in orders:
                emu.pay(order)
                await a.notifier.expect("shop", order, amount=1, until=timedelta(hours=1))
            a.api.pause = b.api.pause = 0.02  # each question takes a while: rounds overlap
            sweepers = [sweeper(x, clock, rate_per_account=1000, batch=3) for x in (a, a, b, b)]
            clock.past_first_due()
            for _ in range(3):
                await asyncio.gather(*(s.run_once() for s in sweepers))
            hits = a.api.hits + b.api.hits
            assert sorted(hits) == sorted(orders)  # each asked once, by one sweeper
            assert a.api.overlaps == b.api.overlaps == 0
            assert sorted(r.order_id for r in a.delivered + b.delivered) == sorted(orders)
    finally:
        await drop(backend, url)


async def test_the_schedule_1_3_10_30_minutes_then_hourly() -> None:
    clock = Clock()
    async with shop("memory://") as s:
        await s.notifier.expect("shop", "unpaid", amount=1, until=clock.t + 10 * 86400)
        sweep = sweeper(s, clock)
        first = await s.notifier.store.expectations.get("shop", "unpaid")
        assert first is not None
        start = first.next_due - 60  # when it was expected, by the real clock
        asked_at = []
        for _ in range(7):
            record = await s.notifier.store.expectations.get("shop", "unpaid")
            assert record is not None
            clock.t = record.next_due - 0.5
            assert (await sweep.run_once()).asked == []  # not before it is due
            clock.t = record.next_due
            assert (await sweep.run_once()).rescheduled == [("shop", "unpaid", None)]
            asked_at.append(round(clock.t - start))
        assert asked_at == [60, 240, 840, 2640, 6240, 9840, 13440]
        assert len(s.api.hits) == 7


async def test_the_provider_down_the_account_backs_off() -> None:
    clock = Clock()
    async with shop("memory://", query_attempts=1) as s:
        for order in ("order-1", "order-2"):
            s.emu.pay(order)
            await s.notifier.expect("shop", order, amount=1, until=timedelta(hours=24))
        s.emu.down = True
        sweep = sweeper(s, clock, rate_per_account=100)
        clock.past_first_due()
        first = await sweep.run_once()
        assert len(first.asked) == 1  # the other waits with its account
        assert len(first.deferred) == 1
        assert len(s.api.hits) == 1
        for pause in (60, 120, 240):
            clock.t += pause - 1
            assert (await sweep.run_once()).asked == []
            clock.t += 1
            assert len((await sweep.run_once()).asked) == 1
        assert len(s.api.hits) == 4  # once per backoff step, never more
        s.emu.down = False
        clock.t += 480
        recovered = (await sweep.run_once()).recovered
        clock.t += 1
        recovered += (await sweep.run_once()).recovered
        assert sorted(k[1] for k in recovered) == ["order-1", "order-2"]
        assert len(s.delivered) == 2


async def test_past_until_an_unpaid_expectation_expires_as_unpaid() -> None:
    clock = Clock()
    async with shop("memory://") as s:
        # until from the real clock, as expect dates the first question: however long the setup took.
        await s.notifier.expect("shop", "order-1", amount=1, until=time.time() + 100)
        sweep = sweeper(s, clock)
        clock.past_first_due()
        assert (await sweep.run_once()).rescheduled == [("shop", "order-1", None)]
        record = await s.notifier.store.expectations.get("shop", "order-1")
        assert record is not None
        assert record.next_due == record.until  # one last question at until, not later
        clock.t = record.until
        assert (await sweep.run_once()).expired == [("shop", "order-1", None)]
        assert await state(s, "order-1") == (ExpectationState.EXPIRED, "unpaid")
        clock.t += 86400
        assert (await sweep.run_once()).asked == []
        assert len(s.api.hits) == 2


async def test_questions_per_account_are_rate_bounded() -> None:
    clock = Clock()
    async with shop("memory://") as s:
        for i in range(30):
            await s.notifier.expect("shop", f"order-{i}", amount=1, until=timedelta(hours=24))
        sweep = sweeper(s, clock, rate_per_account=0.5, burst=2, batch=50)
        clock.past_first_due()
        start = clock.t
        for _ in range(40):  # 20 seconds, a round every half second
            await sweep.run_once()
            clock.t += 0.5
        elapsed = clock.t - start
        assert len(s.api.hits) <= 2 + 0.5 * elapsed  # the burst, then the rate
        assert len(s.api.hits) >= 0.5 * elapsed - 1
        records = await s.notifier.store.expectations.find(limit=100)
        assert sum(r.attempts for r in records) == len(s.api.hits)  # put back is not asked


async def test_the_notifier_runs_its_sweeper_and_stops_it_cleanly() -> None:
    async with shop("memory://", sweeper=True, close_timeout=2) as s:
        assert s.notifier.sweeper is not None
        task = s.notifier._sweeping
        assert task is not None
        assert not task.done()
        s.emu.pay("order-1")
        await s.notifier.store.expectations.expect(
            "shop", "order-1", amount=1, until=time.time() + 60, first_due=time.time()
        )
        s.notifier.sweeper.stop()
        await asyncio.wait_for(asyncio.shield(task), 10)
        assert s.delivered == [] or [r.order_id for r in s.delivered] == ["order-1"]
    assert s.notifier.sweeper is None
    assert task.done()
    assert not task.cancelled()


@pytest.mark.parametrize(("line", "sweeps"), [("", True), ("sweeper = false", False)])
async def test_serve_processes_sweep_unless_the_config_says_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, sweeps: bool
) -> None:
    from paynotify.cli import _serve

    config = tmp_path / "paynotify.toml"
    given = WeChatPayV2Emulator().account_settings()
    monkeypatch.setenv("PAYNOTIFY_TEST_V2_KEY", str(given.pop("api_key")))
    settings = "".join(f'{k} = "{v}"\n' for k, v in given.items()) + 'api_key_env = "PAYNOTIFY_TEST_V2_KEY"\n'
    config.write_text(f'store = "memory://"\n{line}\n[accounts.shop]\nprovider = "wechatpay-v2"\n{settings}')
    monkeypatch.setenv("PAYNOTIFY_SERVE_CONFIG", str(config))
    app = _serve.app_from_environment()
    notifier = app.lifespan.__self__  # type: ignore[attr-defined]
    async with notifier:
        assert (notifier.sweeper is not None) is sweeps
    own = Notifier("memory://")  # your own process: only when the option says so
    await own.open()
    assert own.sweeper is None
    await own.aclose()


async def test_a_refund_whose_notification_never_came_is_recovered(store_url: str) -> None:
    clock = Clock()
    async with shop(store_url) as s:
        s.emu.pay("order-1", total_fee=10000)
        assert await s.notify("order-1") == ACK  # the payment came
        s.emu.refund("refund-1", "order-1", refund_fee=1000)  # its refund's notification did not
        await s.notifier.expect(
            "shop", "order-1", refund_id="refund-1", amount="10.00", until=timedelta(days=1)
        )
        clock.past_first_due()
        sweep = await sweeper(s, clock).run_once()
        assert sweep.recovered == [("shop", "order-1", "refund-1")]
        assert [(r.kind.value, r.refund_id) for r in s.delivered] == [
            ("payment", None),
            ("refund", "refund-1"),
        ]
        record = await s.notifier.store.expectations.get("shop", "order-1", refund_id="refund-1")
        assert record is not None
        assert (record.state, record.outcome) == (ExpectationState.SETTLED, "succeeded")


async def test_what_the_notifiers_sweeper_recovers_is_counted() -> None:
    from prometheus_client import CollectorRegistry

    from paynotify.ops import Instrumentation

    registry = CollectorRegistry()
    async with shop("memory://", sweeper=True) as s:
        Instrumentation(registry=registry, tracing=False).attach(s.notifier)
        s.emu.pay("order-1")
        await s.notifier.store.expectations.expect(
            "shop", "order-1", amount=1, until=time.time() + 60, first_due=time.time()
        )
        assert s.notifier.sweeper is not None
        arrived = asyncio.Event()
        s.notifier.subscribe(lambda result: arrived.set(), name="arrived")
        await asyncio.wait_for(arrived.wait(), 10)  # the sweeper rounds every 5 s at most
        labels = {"provider": "wechatpay-v2", "account": "shop"}
        assert registry.get_sample_value("paynotify_recovered_total", labels) == 1


@pytest.mark.parametrize("which", ["wechatpay-v2", "wechatpay-v3", "unionpay"])
async def test_every_providers_dropped_notification_is_recovered_once(which: str) -> None:
    from test_query_core import setup

    clock = Clock()
    async with setup(which) as s:
        handle = s.side.paid("order00001")
        at = s.side.emulator.txn_time(handle) if which == "unionpay" else None
        await s.notifier.expect("shop", "order00001", amount="88.88", until=timedelta(hours=24), at=at)
        clock.past_first_due()
        sweep = await Sweeper(s.notifier.store, s.notifier.query, clock=clock).run_once()
        assert sweep.recovered == [("shop", "order00001", None)]
        assert await s.side.notify(s.client, handle)  # the late notification: acknowledged ...
        assert [(r.order_id, r.source.value) for r in s.delivered] == [
            ("order00001", "query")
        ]  # ... not again
        assert s.front.seen == 1


async def test_queued_delivery_closes_the_expectation_when_the_dispatcher_delivers() -> None:
    async with shop("memory://", delivery="queued") as s:
        s.emu.pay("order-1")
        await s.notifier.expect("shop", "order-1", amount="88.88", until=timedelta(hours=1))
        arrived = asyncio.Event()
        s.notifier.subscribe(lambda result: arrived.set(), name="arrived")
        assert await s.notify("order-1") == ACK  # recorded, acknowledged; not delivered yet
        await asyncio.wait_for(arrived.wait(), 10)
        assert s.notifier.dispatcher is not None
        for _ in range(100):  # the completion, then the close, follow the last subscriber
            if (await state(s, "order-1"))[0] is ExpectationState.SETTLED:
                break
            await asyncio.sleep(0.01)
        assert await state(s, "order-1") == (ExpectationState.SETTLED, "succeeded")


async def test_a_pending_state_does_not_close_and_expectations_can_be_off() -> None:
    async with shop("memory://") as s:
        s.emu.pay("order-1", trade_state="NOTPAY")
        await s.notifier.expect("shop", "order-1", amount=1, until=timedelta(hours=1))
        clock = Clock()
        clock.past_first_due()
        sweep = await sweeper(s, clock).run_once()
        assert sweep.rescheduled == [("shop", "order-1", None)]
        assert (await state(s, "order-1"))[0] is ExpectationState.OPEN
    async with shop("memory://", expectations=False) as off:
        with pytest.raises(ConfigurationError, match="expectations are off"):
            await off.notifier.expect("shop", "order-1", amount=1, until=timedelta(hours=1))


class NoExpectations(MemoryStore):
    """A third party's store written before expectations: the contract's default."""

    @property
    def expectations(self) -> ExpectationStore:
        return Store.expectations.fget(self)  # type: ignore[attr-defined,no-any-return]


async def test_a_store_without_expectations_still_delivers_and_runs_no_sweeper(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with shop("memory://", sweeper=True) as s:
        pass
    emu = WeChatPayV2Emulator()
    notifier = Notifier(NoExpectations(), sweeper=True)
    notifier.add_account("shop", "wechatpay-v2", **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    emu.pay("order-1")
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with notifier, httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as client:
        assert notifier.sweeper is None
        assert "keeps no expectations" in caplog.text
        body = emu.notification(order="order-1")
        response = await client.post("/shop/notify", content=body, headers={"content-type": "text/xml"})
        assert response.content == ACK
        assert len(delivered) == 1
        with pytest.raises(NotImplementedError):
            await notifier.expect("shop", "order-2", amount=1, until=timedelta(hours=1))
    assert s.notifier.sweeper is None


async def test_alipays_dropped_notification_is_recovered_once() -> None:
    from urllib.parse import urlsplit

    from paynotify_alipay.testing import AlipayEmulator, generate_key

    emu = AlipayEmulator(alipay_key=generate_key(), app_key=generate_key())
    host = urlsplit(emu.base_url).hostname or ""
    notifier = Notifier("memory://", api_transport=EmulatorTransport({host: emu}))
    notifier.add_account("shop", "alipay", **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    clock = Clock()
    transport = httpx.ASGITransport(app=notifier.asgi())
    async with notifier, httpx.AsyncClient(transport=transport, base_url="http://paynotify.test") as client:
        emu.pay("order-1")
        await notifier.expect("shop", "order-1", amount="88.88", until=timedelta(hours=24))
        clock.past_first_due()
        sweep = await Sweeper(notifier.store, notifier.query, clock=clock).run_once()
        assert sweep.recovered == [("shop", "order-1", None)]
        await emu.push(client, "/shop/notify", order="order-1")  # the late notification
        assert [(r.order_id, r.source.value) for r in delivered] == [("order-1", "query")]
        assert len(emu.requests) == 1


async def test_the_provider_down_and_slow_questions_waiting_their_turn_are_not_sent() -> None:
    # Down and slow: several questions of one round are under way when the first fails. Those
    # still waiting for their turn must see the account backing off, not go out one after another.
    clock = Clock()
    async with shop("memory://", query_attempts=1) as s:
        for i in range(10):
            await s.notifier.expect("shop", f"order-{i}", amount=1, until=timedelta(hours=24))
        s.emu.down = True
        s.api.pause = 0.2
        sweep = sweeper(s, clock, rate_per_account=100, concurrency=2)
        clock.past_first_due()
        first = await sweep.run_once()
        assert len(s.api.hits) == 2  # the two under way at once; the eight waiting were put back
        assert len(first.asked) == 2
        assert len(first.deferred) == 8
        clock.t += 30
        assert (await sweep.run_once()).asked == []  # still backing off: nothing sent
        clock.t += 31
        again = await sweep.run_once()
        assert len(again.asked) == 1  # one probe per backoff step, not the whole backlog
        assert len(s.api.hits) == 3
        records = await s.notifier.store.expectations.find(limit=100)
        assert sum(r.attempts for r in records) == len(s.api.hits)  # put back is not asked
