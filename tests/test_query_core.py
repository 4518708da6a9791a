"""`Notifier.query` against the WeChat Pay v2 and v3 and UnionPay emulators (reached through httpx's ASGI
transport): a queried state goes through the notification's pipeline, so a query and a notification
of one state are one event, delivered once whichever comes first, also when they race, on every
store; an answer that does not verify is refused and delivers nothing."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from _echo_provider import EchoProvider
from _query_emulator_send import app_client
from _store_backends import BACKENDS, backend_stores
from cryptography.hazmat.primitives.asymmetric import rsa
from paynotify_unionpay._emulator import MerchantCertificate, generate_merchant_certificate
from paynotify_unionpay.testing import SigningChain, UnionPayEmulator, generate_chain
from paynotify_wechatpay import WeChatPayV3Provider
from paynotify_wechatpay.testing import (
    V3SigningKey,
    WeChatPayV2Emulator,
    WeChatPayV3Emulator,
    generate_apiv3_key,
    generate_v3_platform_certificate,
)

from paynotify import (
    ConfigurationError,
    EventState,
    MemoryStore,
    NotificationError,
    Notifier,
    Observer,
    Outcome,
    PaymentResult,
    ProviderApi,
    ProviderApiError,
    ProviderUnavailable,
    QueryAnswer,
    Send,
    Source,
    Store,
    UnknownAccount,
    VerificationError,
)
from paynotify.recovery import MAX_ANSWER_BYTES


@functools.cache
def platform() -> V3SigningKey:
    return generate_v3_platform_certificate()


@functools.cache
def merchant_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def apiv3() -> str:
    return generate_apiv3_key()


@functools.cache
def chain() -> SigningChain:
    return generate_chain()


@functools.cache
def merchant_certificate() -> MerchantCertificate:
    return generate_merchant_certificate()


@dataclass
class Side:
    """One provider's emulator and the two ways news of an order reaches the notifier."""

    emulator: Any
    provider: str
    paid: Callable[[str], Any]
    """Make order `order_id` paid at the emulator; returns what `notify`/`query` take."""
    notify: Callable[[httpx.AsyncClient, Any], Awaitable[list[int]]]
    query: Callable[[Notifier, str, Any], Awaitable[Any]]

    @property
    def requests(self) -> int:
        return len(self.emulator.requests)


def wechat() -> Side:
    emu = WeChatPayV3Emulator(apiv3_key=apiv3(), signing_key=platform(), merchant_key=merchant_key())

    def paid(order_id: str) -> str:
        emu.pay(order_id, total=8888)
        return order_id

    async def notify(client: httpx.AsyncClient, order_id: str) -> list[int]:
        return await emu.push(client, "/shop/notify", order=order_id)

    async def query(notifier: Notifier, order_id: str, handle: str) -> Any:
        return await notifier.query("shop", order_id)

    return Side(emu, "wechatpay-v3", paid, notify, query)


def unionpay() -> Side:
    emu = UnionPayEmulator(chain=chain(), merchant=merchant_certificate())

    def paid(order_id: str) -> dict[str, str]:
        return emu.pay(order_id, txn_amt="8888")

    async def notify(client: httpx.AsyncClient, transaction: dict[str, str]) -> list[int]:
        return await emu.push(client, "/shop/notify", transaction)

    async def query(notifier: Notifier, order_id: str, transaction: dict[str, str]) -> Any:
        return await notifier.query("shop", order_id, at=emu.txn_time(transaction))

    return Side(emu, "unionpay", paid, notify, query)


def wechat_v2() -> Side:
    emu = WeChatPayV2Emulator(sign_type="HMAC-SHA256")

    def paid(order_id: str) -> str:
        emu.pay(order_id, total_fee=8888)
        return order_id

    async def notify(client: httpx.AsyncClient, order_id: str) -> list[int]:
        return await emu.push(client, "/shop/notify", order=order_id)

    async def query(notifier: Notifier, order_id: str, handle: str) -> Any:
        return await notifier.query("shop", order_id)

    return Side(emu, "wechatpay-v2", paid, notify, query)


SIDES = {"wechatpay-v3": wechat, "unionpay": unionpay, "wechatpay-v2": wechat_v2}


class Counted:
    """An ASGI app in front of another that counts the queries that reached it (not WeChat Pay v3's
    certificate downloads, which the Notifier's upkeep makes at open)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen = 0
        self.after: Callable[[], None] | None = None
        """Called after each request is answered."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] != "/v3/certificates":
            self.seen += 1
        await self.app(scope, receive, send)
        if self.after is not None:
            self.after()


class Outcomes(Observer):
    def __init__(self) -> None:
        self.queries: list[Outcome] = []

    def query(self, provider: str, account: str, outcome: Outcome, seconds: float) -> None:
        self.queries.append(outcome)


@dataclass
class Setup:
    side: Side
    notifier: Notifier
    client: httpx.AsyncClient
    delivered: list[PaymentResult]
    outcomes: Outcomes
    front: Counted

    async def run(self, order_id: str, handle: Any) -> Any:
        return await self.side.query(self.notifier, order_id, handle)


@asynccontextmanager
async def setup(
    which: str, store: Store | None = None, *, delay: bool = False, **options: Any
) -> AsyncIterator[Setup]:
    side = SIDES[which]()
    front = Counted(side.emulator)
    notifier = Notifier(store or MemoryStore(), api_transport=httpx.ASGITransport(app=front), **options)
    notifier.add_account("shop", side.provider, **side.emulator.account_settings())
    delivered: list[PaymentResult] = []

    @notifier.subscribe
    async def record(result: PaymentResult) -> None:
        if delay:
            await asyncio.sleep(0)  # lets the other path run while this one holds the claim
        delivered.append(result)

    outcomes = Outcomes()
    notifier.observe(outcomes)
    async with notifier, app_client(notifier.asgi()) as client:
        yield Setup(side, notifier, client, delivered, outcomes, front)


@pytest.fixture(params=sorted(SIDES))
def which(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- one event, whichever way it came ------------------------------------------------------------


async def test_a_queried_payment_is_delivered_once(which: str) -> None:
    async with setup(which) as s:
        handle = s.side.paid("order20260101001")
        answer = await s.run("order20260101001", handle)
        again = await s.run("order20260101001", handle)
        event = await s.notifier.store.get(answer.result.event_id)
    assert (answer.outcome, again.outcome) == (Outcome.DELIVERED, Outcome.DUPLICATE)
    assert [r.event_id for r in s.delivered] == [answer.result.event_id]
    assert s.delivered[0].source is Source.QUERY
    assert s.delivered[0].is_paid  # the provider's signed word: an order is fulfilled on it
    assert event is not None
    assert event.state is EventState.DONE
    assert s.outcomes.queries == [Outcome.DELIVERED, Outcome.DUPLICATE]


async def test_a_late_notification_after_the_query_is_not_delivered_again(which: str) -> None:
    async with setup(which) as s:
        handle = s.side.paid("order20260101002")
        answer = await s.run("order20260101002", handle)
        statuses = await s.side.notify(s.client, handle)
    assert answer.outcome is Outcome.DELIVERED
    assert statuses[0] in (200, 204)  # acknowledged: the provider stops resending
    assert len(s.delivered) == 1


async def test_a_query_after_the_notification_is_a_duplicate(which: str) -> None:
    async with setup(which) as s:
        handle = s.side.paid("order20260101003")
        await s.side.notify(s.client, handle)
        answer = await s.run("order20260101003", handle)
    assert answer.outcome is Outcome.DUPLICATE
    assert answer.result is not None
    assert answer.result.source is Source.QUERY
    assert [r.source for r in s.delivered] == [Source.NOTIFY]
    assert s.delivered[0].event_id == answer.result.event_id


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_query_racing_its_notification_is_delivered_exactly_once(
    which: str, backend: str, tmp_path: Path
) -> None:
    rounds = 50
    statuses: list[int] = []
    async with backend_stores(backend, tmp_path) as stores, setup(which, stores(), delay=True) as s:
        for i in range(rounds):
            order_id = f"race{i:04d}{backend}"[:32]
            handle = s.side.paid(order_id)
            notified = s.side.notify(s.client, handle)
            queried = s.run(order_id, handle)
            if i % 2:  # either starts first
                _, pushed = await asyncio.wait_for(asyncio.gather(queried, notified), 30)
            else:
                pushed, _ = await asyncio.wait_for(asyncio.gather(notified, queried), 30)
            statuses += pushed
    ids = [r.event_id for r in s.delivered]
    assert len(ids) == rounds
    assert len(set(ids)) == rounds  # each order once: not twice, none lost
    # The two did meet: one found the other holding the event's claim (it is then left to that one).
    assert Outcome.IN_FLIGHT in s.outcomes.queries or any(status >= 500 for status in statuses)


async def test_a_queried_payment_under_queued_delivery_is_dispatched_once() -> None:
    async with setup("wechatpay-v3", delivery="queued", backoff_seconds=0.05) as s:
        handle = s.side.paid("order-queued")
        answer = await s.run("order-queued", handle)
        await s.side.notify(s.client, handle)
        async with asyncio.timeout(10):
            while not s.delivered:  # noqa: ASYNC110 - the dispatcher delivers in its own task
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # a second delivery, if one were coming, would come now
    assert answer.outcome is Outcome.QUEUED
    assert len(s.delivered) == 1


async def test_a_check_refuses_a_queried_payment_as_it_refuses_a_notified_one() -> None:
    async with setup("wechatpay-v3") as s:
        refused: list[str] = []

        @s.notifier.check
        def no_large_amounts(result: PaymentResult) -> bool:
            return result.amount is None or result.amount < 10

        @s.notifier.on_rejected
        def tell(result: PaymentResult, error: NotificationError) -> None:
            refused.append(result.event_id)

        handle = s.side.paid("order-large")
        answer = await s.run("order-large", handle)
        event = await s.notifier.store.get(answer.result.event_id)
    assert answer.outcome is Outcome.REJECTED_CHECK
    assert s.delivered == []
    assert refused == [answer.result.event_id]
    assert event is not None
    assert event.state is EventState.REJECTED


async def test_an_order_the_provider_does_not_know_is_not_found_and_nothing_is_recorded(which: str) -> None:
    async with setup(which) as s:
        handle = s.side.paid("order20260101004")
        if which == "unionpay":
            answer = await s.notifier.query("shop", "order20260101999", at=datetime.now().astimezone())
        else:
            answer = await s.notifier.query("shop", "never-made")
        found = await s.notifier.store.find(limit=10)
    assert handle is not None
    assert (answer.found, answer.outcome) == (False, Outcome.NOT_FOUND)
    assert found == []
    assert s.front.seen == 1


# -- refused answers -----------------------------------------------------------------------------


def _tamper(body: bytes) -> bytes:
    return body.replace(b"8888", b"9999")


@pytest.mark.parametrize("fault", ["forged", "unsigned"])
async def test_an_answer_that_does_not_verify_is_refused_and_delivers_nothing(
    which: str, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="paynotify")
    async with setup(which) as s:
        handle = s.side.paid("order20260101005")
        if fault == "forged":
            s.side.emulator.tamper = _tamper  # the amount changed after signing
        else:
            s.side.emulator.unsigned = True
        with pytest.raises(VerificationError):
            await s.run("order20260101005", handle)
        stored = await s.notifier.store.find(limit=10)
        # What was refused left nothing behind: the genuine notification is delivered after it.
        s.side.emulator.tamper, s.side.emulator.unsigned = None, False
        await s.side.notify(s.client, handle)
    assert s.outcomes.queries == [Outcome.QUERY_REFUSED]
    assert stored == []
    assert [r.source for r in s.delivered] == [Source.NOTIFY]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused, the answer does not verify" in logged
    # No answer body (its field names; digits would match a random key serial), no key.
    for body_part in ("out_trade_no", "trade_state", "txnAmt", "orderId=", "signPubKeyCert", "BEGIN"):
        assert body_part not in logged


# -- the provider slow, down, refusing -----------------------------------------------------------


async def test_a_slow_provider_is_given_the_deadline_and_no_more(which: str) -> None:
    async with setup(which, query_timeout=0.3, query_attempts=3) as s:
        handle = s.side.paid("order20260101006")
        s.side.emulator.stall = asyncio.Event()  # never set: no answer comes
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match=r"no answer within 0\.3 s"):
            await asyncio.wait_for(s.run("order20260101006", handle), 5)  # a TimeoutError if not honored
        elapsed = time.monotonic() - started
        s.side.emulator.stall.set()
    assert 0.25 < elapsed < 1.0
    assert s.front.seen == 1  # the deadline covers the retries: none is started after it
    assert s.outcomes.queries == [Outcome.PROVIDER_UNAVAILABLE]
    assert s.delivered == []


async def test_a_provider_that_is_down_is_asked_a_bounded_number_of_times(which: str) -> None:
    async with setup(which, query_attempts=3) as s:
        handle = s.side.paid("order20260101007")
        s.side.emulator.down = True
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await s.run("order20260101007", handle)
        elapsed = time.monotonic() - started
    assert s.front.seen == 3
    assert elapsed < 2.0  # short pauses between attempts (0.1 s, then 0.2 s)
    assert s.outcomes.queries == [Outcome.PROVIDER_UNAVAILABLE]


async def test_a_provider_down_once_is_asked_again_and_answers(which: str) -> None:
    async with setup(which) as s:
        handle = s.side.paid("order20260101008")
        s.side.emulator.down = True
        s.front.after = lambda: setattr(s.side.emulator, "down", False)  # up for the next attempt
        answer = await s.run("order20260101008", handle)
    assert answer.outcome is Outcome.DELIVERED
    assert s.front.seen == 2


async def test_a_4xx_is_not_asked_again() -> None:
    async with setup("wechatpay-v3") as s:
        s.side.paid("order-401")
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        s.side.emulator.merchant_key = other  # the emulator now checks another merchant key: 401
        with pytest.raises(ProviderApiError, match="SIGN_ERROR") as raised:
            await s.run("order-401", "order-401")
    assert not isinstance(raised.value, ProviderUnavailable)
    assert s.front.seen == 1
    assert s.outcomes.queries == [Outcome.PROVIDER_ERROR]


class Unreachable(httpx.AsyncBaseTransport):
    """A network on which every connection is refused; counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += request.url.path != "/v3/certificates"  # the upkeep's download at open
        raise httpx.ConnectError("connection refused", request=request)

    async def aclose(self) -> None:
        self.closed += 1


async def test_an_unreachable_provider_is_unavailable_after_the_bounded_attempts() -> None:
    transport = Unreachable()
    emu = WeChatPayV3Emulator(apiv3_key=apiv3(), signing_key=platform(), merchant_key=merchant_key())
    notifier = Notifier(MemoryStore(), api_transport=transport, query_attempts=2)
    notifier.add_account("shop", "wechatpay-v3", **emu.account_settings())
    async with notifier:
        with pytest.raises(ProviderUnavailable, match=r"unreachable \(ConnectError\) after 2 attempt"):
            await notifier.query("shop", "order-1")
        assert transport.attempts == 2
        with pytest.raises(ProviderUnavailable):
            await notifier.query("shop", "order-1")
        assert transport.attempts == 4
    assert transport.closed == 1  # one pooled client for both queries, closed with the Notifier


async def test_a_real_closed_port_is_unavailable() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    emu = WeChatPayV3Emulator(apiv3_key=apiv3(), signing_key=platform(), merchant_key=merchant_key())
    notifier = Notifier(MemoryStore(), query_attempts=2)
    notifier.add_account(
        "shop", "wechatpay-v3", **{**emu.account_settings(), "base_url": f"http://127.0.0.1:{port}"}
    )
    async with notifier:
        with pytest.raises(ProviderUnavailable, match="unreachable"):
            await notifier.query("shop", "order-1")


async def test_no_secret_or_body_is_logged_while_retrying(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with setup("wechatpay-v3", query_attempts=2) as s:
        s.side.paid("order-log")
        s.side.emulator.down = True
        with pytest.raises(ProviderUnavailable):
            await s.run("order-log", "order-log")
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)  # httpx's too
    for secret in ("WECHATPAY2-SHA256", "signature=", "BEGIN", apiv3()):
        assert secret not in logged
    ours = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name == "paynotify")
    assert "attempt 1 of 2 failed (HTTP 503)" in ours
    assert "mchid=" not in ours  # not even the query string


# -- what cannot be asked ------------------------------------------------------------------------


async def test_what_cannot_be_asked_says_why() -> None:
    emu = WeChatPayV3Emulator(apiv3_key=apiv3(), signing_key=platform(), merchant_key=merchant_key())
    notifier = Notifier(MemoryStore())
    settings = emu.account_settings()
    notifier.add_account("shop", "wechatpay-v3", **settings)
    no_key = {k: v for k, v in settings.items() if k not in ("merchant_private_key", "merchant_serial")}
    notifier.add_account("keyless", "wechatpay-v3", **no_key)
    notifier.add_account("echo", EchoProvider())
    async with notifier:
        with pytest.raises(UnknownAccount, match=r"no account 'nope' \(configured: echo, keyless, shop\)"):
            await notifier.query("nope", "order-1")
        with pytest.raises(ConfigurationError, match="provider test-echo has no API client"):
            await notifier.query("echo", "order-1")
        with pytest.raises(ConfigurationError, match="'keyless' cannot query wechatpay-v3"):
            await notifier.query("keyless", "order-1")
    assert notifier._api_send is None or notifier._api_send._client is None  # nothing was sent


async def test_query_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="query_timeout must be positive"):
        Notifier(MemoryStore(), query_timeout=0)
    with pytest.raises(ConfigurationError, match="query_attempts must be a whole number"):
        Notifier(MemoryStore(), query_attempts=1.5)  # type: ignore[arg-type]


async def test_queries_are_counted_by_outcome_in_the_metrics() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from paynotify.ops import Instrumentation

    registry = CollectorRegistry()
    async with setup("wechatpay-v3") as s:
        Instrumentation(registry=registry, tracing=False).attach(s.notifier)
        s.side.paid("order-m")
        await s.run("order-m", "order-m")
        await s.run("order-m", "order-m")
        s.side.emulator.unsigned = True
        with pytest.raises(VerificationError):
            await s.run("order-m", "order-m")
    text = generate_latest(registry).decode()
    for outcome in ("delivered", "duplicate", "query_refused"):
        line = f'paynotify_queries_total{{account="shop",outcome="{outcome}",provider="wechatpay-v3"}} 1.0'
        assert line in text
    assert "paynotify_notifications_total{" not in text  # a query is not an HTTP delivery


class _Mislabeling(ProviderApi[Any]):
    """A client that answers for another account than the one asked for (a plugin's bug)."""

    def __init__(self, inner: ProviderApi[Any]) -> None:
        self.inner = inner

    def can_query(self, account: Any) -> bool:
        return True

    async def query_payment(self, send: Send, account: Any, order_id: str, *, at: Any = None) -> QueryAnswer:
        answer = await self.inner.query_payment(send, account, order_id, at=at)
        assert answer.result is not None
        return QueryAnswer(answer.result.model_copy(update={"account": "another"}), answer.raw)

    async def query_refund(self, send: Send, account: Any, refund_id: str, **where: Any) -> QueryAnswer:
        raise NotImplementedError


class _MislabelingProvider(WeChatPayV3Provider):
    def api(self) -> ProviderApi[Any]:  # type: ignore[override] # another client, on purpose
        inner = super().api()
        assert inner is not None
        return _Mislabeling(inner)


async def test_an_answer_labelled_for_another_account_is_not_delivered() -> None:
    async with setup("wechatpay-v3") as s:
        s.notifier.update_account("shop", _MislabelingProvider(), **s.side.emulator.account_settings())
        s.side.paid("order-label")
        with pytest.raises(ProviderApiError, match="answered for another account"):
            await s.run("order-label", "order-label")
        stored = await s.notifier.store.find(limit=10)
    assert stored == []
    assert s.delivered == []
    assert s.outcomes.queries == [Outcome.PROVIDER_ERROR]


_NOT_GZIP = b"this is not gzip at all"


class _Answering(httpx.AsyncBaseTransport):
    """A network whose every answer is the one given."""

    def __init__(self, response: Callable[[httpx.Request], httpx.Response]) -> None:
        self.response = response
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += request.url.path != "/v3/certificates"  # the upkeep's download at open
        return self.response(request)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda r: httpx.Response(200, content=b"x" * (MAX_ANSWER_BYTES + 1), request=r), "larger than"),
        (
            lambda r: httpx.Response(200, headers={"content-encoding": "gzip"}, content=_NOT_GZIP, request=r),
            r"unreadable answer \(DecodingError\)",
        ),
    ],
    ids=["too-large", "bad-gzip"],
)
async def test_an_answer_that_cannot_be_read_is_a_provider_error_not_retried(
    answer: Callable[[httpx.Request], httpx.Response], error: str
) -> None:
    transport = _Answering(answer)
    emu = WeChatPayV3Emulator(apiv3_key=apiv3(), signing_key=platform(), merchant_key=merchant_key())
    notifier = Notifier(MemoryStore(), api_transport=transport)
    notifier.add_account("shop", "wechatpay-v3", **emu.account_settings())
    async with notifier:
        with pytest.raises(ProviderApiError, match=error) as raised:
            await notifier.query("shop", "order-1")
    assert not isinstance(raised.value, ProviderUnavailable)
    assert transport.attempts == 1


async def test_a_subscriber_failing_on_a_queried_payment_leaves_it_for_the_notification() -> None:
    async with setup("wechatpay-v3") as s:
        failing = [True]

        @s.notifier.subscribe(name="flaky")
        def flaky(result: PaymentResult) -> None:
            if failing[0]:
                raise RuntimeError("down for a moment")

        s.side.paid("order-flaky")
        answer = await s.run("order-flaky", "order-flaky")
        event = await s.notifier.store.get(answer.result.event_id)
        failing[0] = False
        statuses = await s.side.notify(s.client, "order-flaky")  # the provider's resend
        done = await s.notifier.store.get(answer.result.event_id)
    assert answer.outcome is Outcome.DELIVERY_FAILED
    assert event is not None
    assert event.state is EventState.RELEASED  # handed back: the next attempt takes it at once
    assert statuses == [204]
    assert done is not None
    assert done.state is EventState.DONE
    assert len(s.delivered) == 1  # the subscriber that had succeeded is not run again
