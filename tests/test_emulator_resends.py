"""The emulators' notification push (issue 21): `paynotify.testing.NotificationCourier` resends a
notification on each provider's schedule until the provider's success reply, on a virtual clock (no
sleeps), with drop, duplicate, delay and reorder; against a real Notifier, every provider: a service
that refuses the first two attempts gets the third, delivered once; a duplicate, a refund before its
payment, and a dropped notification recovered by the sweeper, each delivered exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_sweeper import Clock

from paynotify import DemoRequest, Notifier, PaymentResult
from paynotify.recovery import EmulatorTransport, Sweeper
from paynotify.testing import NotificationCourier, ResendSchedule, VirtualClock

PROVIDERS = ["alipay", "wechatpay-v2", "wechatpay-v3", "unionpay"]
URL = "/shop/notify"


class Refusing:
    """The service behind a front that answers 503 to the first `refusals` notifications."""

    def __init__(self, app: Any, refusals: int) -> None:
        self.app = app
        self.refusals = refusals
        self.arrived = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == URL:
            self.arrived += 1
            if self.arrived <= self.refusals:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b"down"})
                return
        await self.app(scope, receive, send)


@dataclass
class Rig:
    emulator: Any
    notifier: Notifier
    courier: NotificationCourier
    clock: VirtualClock
    front: Refusing
    delivered: list[PaymentResult]
    pay: Callable[[str], DemoRequest]
    refund: Callable[[str, str], DemoRequest]
    expect_at: Callable[[str], Any]

    @property
    def schedule(self) -> ResendSchedule:
        return self.courier.schedule


def _provider_side(
    which: str,
) -> tuple[Any, Any, Callable[[str], DemoRequest], Callable[[str, str], DemoRequest]]:
    """The emulator, the transport its API is reached through, and how to pay and refund at it."""
    from test_query_core import SIDES

    if which == "alipay":
        from paynotify_alipay.testing import AlipayEmulator

        alipay = AlipayEmulator()

        def alipay_pay(order: str) -> DemoRequest:
            alipay.pay(order, total_amount="88.88")
            return alipay.notification_request(order=order)

        def alipay_refund(order: str, refund: str) -> DemoRequest:
            alipay.refund(refund, order, refund_amount="10.00")
            return alipay.notification_request(order=order, refund=refund)

        return (
            alipay,
            EmulatorTransport({urlsplit(alipay.base_url).hostname or "": alipay}),
            alipay_pay,
            alipay_refund,
        )
    emu = SIDES[which]().emulator
    transport = httpx.ASGITransport(app=emu)
    if which == "unionpay":
        return (
            emu,
            transport,
            lambda o: emu.notification_request(emu.pay(o, txn_amt="8888")),
            (lambda o, r: emu.notification_request(emu.refund(r, o, txn_amt="1000"))),
        )
    pay_field, refund_field = ("total_fee", "refund_fee") if which == "wechatpay-v2" else ("total", "refund")

    def pay(order: str) -> DemoRequest:
        emu.pay(order, **{pay_field: 8888})
        return emu.notification_request(order=order)  # type: ignore[no-any-return]

    def refund(order: str, refund_id: str) -> DemoRequest:
        emu.refund(refund_id, order, **{refund_field: 1000})
        return emu.notification_request(refund=refund_id)  # type: ignore[no-any-return]

    return emu, transport, pay, refund


@asynccontextmanager
async def rig(which: str, refusals: int = 0) -> AsyncIterator[Rig]:
    emulator, transport, pay, refund = _provider_side(which)
    notifier = Notifier("memory://", api_transport=transport)
    notifier.add_account("shop", which, **emulator.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    front = Refusing(notifier.asgi(), refusals)
    clock = VirtualClock()

    def expect_at(order: str) -> Any:
        if which != "unionpay":
            return None
        consume = next(
            t for t in emulator.transactions.values() if t["orderId"] == order and t["txnType"] == "01"
        )
        return emulator.txn_time(consume)

    transport_in = httpx.ASGITransport(app=front)
    async with (
        notifier,
        httpx.AsyncClient(transport=transport_in, base_url="http://paynotify.test") as client,
    ):
        courier = emulator.courier(client, clock=clock)
        try:
            yield Rig(emulator, notifier, courier, clock, front, delivered, pay, refund, expect_at)
        finally:
            await courier.aclose()


DOCUMENTED = {
    "alipay": [240, 600, 600, 3600, 7200, 21600, 54000],
    "wechatpay-v2": [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600],
    "wechatpay-v3": [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600],
    "unionpay": [60, 120, 240, 300],
}


@pytest.mark.parametrize("which", PROVIDERS)
async def test_each_emulator_exposes_its_providers_documented_schedule(which: str) -> None:
    async with rig(which) as r:
        assert list(r.schedule.delays) == DOCUMENTED[which]
        assert r.schedule.provider == which
        assert r.schedule.confirmed is (which != "unionpay")  # UnionPay publishes none


@pytest.mark.parametrize("which", PROVIDERS)
async def test_refused_twice_the_third_attempt_on_the_schedule_is_delivered_once(which: str) -> None:
    async with rig(which, refusals=2) as r:
        sending = r.courier.send(URL, r.pay("order00001"))
        third = r.schedule.offsets[2]
        await r.clock.advance(third - 1)
        assert (r.front.arrived, r.delivered) == (2, [])
        await r.clock.advance(1)
        assert r.front.arrived == 3
        assert sending.acknowledged
        assert [a.at for a in sending.attempts] == list(r.schedule.offsets[:3])
        assert [a.acknowledged for a in sending.attempts] == [False, False, True]
        await r.clock.advance(sum(r.schedule.delays) + 1)  # the rest of the schedule: nothing more
        assert r.front.arrived == 3
        assert [(d.order_id, d.source.value) for d in r.delivered] == [("order00001", "notify")]
        assert sending.ended.is_set()


@pytest.mark.parametrize("which", PROVIDERS)
async def test_never_acknowledged_it_is_sent_on_every_offset_and_then_given_up(which: str) -> None:
    async with rig(which, refusals=10_000) as r:
        sending = r.courier.send(URL, r.pay("order00001"))
        await r.clock.advance(sum(r.schedule.delays) * 2)
        assert [a.at for a in sending.attempts] == list(r.schedule.offsets)
        assert not sending.acknowledged
        assert sending.ended.is_set()
        assert r.delivered == []


@pytest.mark.parametrize("which", PROVIDERS)
async def test_a_duplicate_is_acknowledged_and_delivered_once(which: str) -> None:
    async with rig(which) as r:
        sending = r.courier.send(URL, r.pay("order00001"), copies=2)
        await r.clock.advance(sum(r.schedule.delays) + 1)
        assert [(a.number, a.copy, a.acknowledged) for a in sending.attempts] == [(1, 1, True), (1, 2, True)]
        assert r.front.arrived == 2
        assert [d.order_id for d in r.delivered] == ["order00001"]


@pytest.mark.parametrize("which", PROVIDERS)
async def test_a_refund_notified_before_its_payment_both_delivered_once(which: str) -> None:
    async with rig(which) as r:
        queue = r.courier.queue()
        payment, refund = r.pay("order00001"), r.refund("order00001", "refund00001")
        queue.put(URL, payment)
        queue.put(URL, refund)
        first_refund, then_payment = await queue.release(order=[1, 0])
        assert (first_refund.request, then_payment.request) == (refund, payment)
        assert [d.kind.value for d in r.delivered] == [
            "refund",
            "payment",
        ]  # arrived, and taken, in that order
        assert first_refund.attempts[0].at == 0
        assert then_payment.attempts[0].at == 0
        await r.clock.advance(sum(r.schedule.delays) + 1)
        assert first_refund.acknowledged
        assert then_payment.acknowledged
        kinds = sorted(d.kind.value for d in r.delivered)
        assert kinds == ["payment", "refund"], r.delivered


@pytest.mark.parametrize("which", PROVIDERS)
async def test_a_dropped_notification_is_recovered_by_the_sweeper_and_its_late_copy_not_again(
    which: str,
) -> None:
    async with rig(which) as r:
        request = r.pay("order00001")
        dropped = r.courier.send(URL, request, drop=True)
        await r.clock.advance(sum(r.schedule.delays) + 1)
        assert dropped.attempts == []
        assert r.front.arrived == 0
        await r.notifier.expect(
            "shop", "order00001", amount="88.88", until=timedelta(hours=24), at=r.expect_at("order00001")
        )
        clock = Clock()
        clock.past_first_due()
        sweep = await Sweeper(r.notifier.store, r.notifier.query, clock=clock).run_once()
        assert sweep.recovered == [("shop", "order00001", None)]
        late = r.courier.send(URL, request)  # the provider's own resend, after all
        await r.clock.advance(1)
        assert late.acknowledged
        assert [(d.order_id, d.source.value) for d in r.delivered] == [("order00001", "query")]


async def test_delay_holds_the_first_attempt_and_a_shuffled_release_sends_each_once() -> None:
    async with rig("wechatpay-v2") as r:
        delayed = r.courier.send(URL, r.pay("order00001"), delay=100)
        await r.clock.advance(99)
        assert delayed.attempts == []
        await r.clock.advance(1)
        assert [a.at for a in delayed.attempts] == [100]
        queue = r.courier.queue()
        held = [(f"order0000{n}", r.pay(f"order0000{n}")) for n in range(2, 6)]
        for _, request in held:
            queue.put(URL, request)
        released = await queue.release(rng=random.Random(7))
        indexes = list(range(4))
        random.Random(7).shuffle(indexes)
        assert indexes != [0, 1, 2, 3]
        assert [s.request for s in released] == [held[i][1] for i in indexes]
        assert [d.order_id for d in r.delivered[1:]] == [held[i][0] for i in indexes]  # arrived in that order
        q = r.courier.queue()
        q.put(URL, r.pay("order00009"))
        with pytest.raises(ValueError, match="every held notification"):
            await q.release(order=[0, 0])


async def test_each_post_is_bounded_by_the_timeout_a_stalled_service_is_a_failed_attempt() -> None:
    never = asyncio.Event()

    async def stalled(scope: Any, receive: Any, send: Any) -> None:
        await never.wait()

    schedule = ResendSchedule("test", delays=(60,), acknowledged=lambda status, body: status == 200)
    clock = VirtualClock()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stalled), base_url="http://x") as client:
        courier = NotificationCourier(client, schedule, clock=clock, timeout=0.05)
        sending = courier.send("/n", DemoRequest("n", "notify", body=b"x"))
        await clock.advance(61)
        assert [(a.at, a.status) for a in sending.attempts] == [(0, None), (60, None)]
        assert sending.ended.is_set()
        assert not sending.acknowledged


V2_REPLY = "<xml><return_code><![CDATA[{}]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
REPLIES = {  # (status, body) -> the provider's success?
    "alipay": [((200, b"success"), True), ((200, b"fail"), False), ((503, b"success"), False)],
    "wechatpay-v2": [
        ((200, V2_REPLY.format("SUCCESS").encode()), True),
        ((200, V2_REPLY.format("FAIL").encode()), False),
        ((500, V2_REPLY.format("SUCCESS").encode()), False),
        ((200, b"not xml"), False),
    ],
    "wechatpay-v3": [((200, b""), True), ((204, b""), True), ((500, b'{"code":"FAIL"}'), False)],
    "unionpay": [((200, b"ok"), True), ((200, b""), True), ((503, b"ok"), False)],
}


@pytest.mark.parametrize("which", PROVIDERS)
def test_only_the_providers_success_reply_stops_its_resends(which: str) -> None:
    from paynotify_alipay._emulator import RESEND_SCHEDULE as ALIPAY
    from paynotify_unionpay._emulator import RESEND_SCHEDULE as UNIONPAY
    from paynotify_wechatpay._emulator_resends import V2_RESEND_SCHEDULE, V3_RESEND_SCHEDULE

    schedule = {"alipay": ALIPAY, "wechatpay-v2": V2_RESEND_SCHEDULE, "wechatpay-v3": V3_RESEND_SCHEDULE,
                "unionpay": UNIONPAY}[which]  # fmt: skip
    assert [schedule.acknowledged(*reply) for reply, _ in REPLIES[which]] == [ok for _, ok in REPLIES[which]]


async def test_deliver_runs_the_notification_in_the_calling_task() -> None:
    async with rig("wechatpay-v2", refusals=1) as r:
        request = r.pay("order00001")
        courier = NotificationCourier(r.courier.client, r.schedule.once(), clock=r.clock)
        refused = await courier.deliver(URL, request)
        assert (refused.statuses, refused.acknowledged, refused.ended.is_set()) == ([503], False, True)
        delivered = await courier.deliver(URL, request, copies=2)
        assert delivered.statuses == [200, 200]
        assert delivered.acknowledged
        assert [d.order_id for d in r.delivered] == ["order00001"]
        assert (await courier.deliver(URL, request, drop=True)).attempts == []
