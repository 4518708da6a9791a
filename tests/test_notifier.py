"""The shared handler: each outcome of the reply matrix, with the ExamplePay provider (ack `OK`,
nack `RETRY` 400)."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

import pytest
from _ledger_provider import pin_store_clock
from conftest import APP_ID, SECRET, example_notify

from paynotify import (
    CheckFailed,
    ConfigurationError,
    InboundRequest,
    Kind,
    MemoryStore,
    NotificationError,
    Notifier,
    PaymentResult,
    ProviderNotFound,
    Status,
    StoreError,
    UnknownAccount,
)
from paynotify._stores.base import Claim


def request(notify: tuple[dict[str, str], bytes]) -> InboundRequest:
    headers, body = notify
    return InboundRequest("POST", "notify", headers, b"", body)


async def test_verified_notification_is_dispatched_once_and_acked(
    notifier: Notifier, delivered: list[PaymentResult]
) -> None:
    reply = await notifier.handle("shop", request(example_notify()))
    assert (reply.status, reply.body) == (200, b"OK")
    assert len(delivered) == 1
    result = delivered[0]
    assert (result.kind, result.status, result.amount, result.order_id) == (
        Kind.PAYMENT,
        Status.SUCCEEDED,
        Decimal("88.88"),
        "order-1",
    )
    assert result.is_paid


async def test_duplicate_of_completed_event_is_acked_without_dispatch(
    notifier: Notifier, delivered: list[PaymentResult]
) -> None:
    for _ in range(3):
        reply = await notifier.handle("shop", request(example_notify()))
        assert reply.body == b"OK"
    assert len(delivered) == 1


async def test_new_state_of_same_trade_is_a_new_event(
    notifier: Notifier, delivered: list[PaymentResult]
) -> None:
    await notifier.handle("shop", request(example_notify(status="pending")))
    await notifier.handle("shop", request(example_notify(status="paid")))
    assert [r.status for r in delivered] == [Status.PENDING, Status.SUCCEEDED]
    assert delivered[0].event_id != delivered[1].event_id


@pytest.mark.parametrize(
    ("notify", "why"),
    [
        (example_notify(secret="someone-elses-secret"), "wrong key"),
        ((({}), example_notify()[1]), "no signature"),
        (
            (
                {"x-signature": example_notify()[0]["x-signature"]},
                example_notify()[1].replace(b"88.88", b"0.01"),
            ),
            "tampered amount",
        ),
        (({"x-signature": "not-hex"}, b"{}"), "garbage signature"),
    ],
)
async def test_bad_signature_gets_failure_reply_and_nothing_dispatched(
    notifier: Notifier, delivered: list[PaymentResult], notify: tuple[dict[str, str], bytes], why: str
) -> None:
    reply = await notifier.handle("shop", request(notify))
    assert (reply.status, reply.body) == (400, b"RETRY"), why
    assert delivered == []


async def test_malformed_body_gets_failure_reply(notifier: Notifier, delivered: list[PaymentResult]) -> None:
    body = b"not json"
    from paynotify_examplepay import sign

    reply = await notifier.handle("shop", request(({"x-signature": sign(body, SECRET)}, body)))
    assert reply.body == b"RETRY"
    assert delivered == []


async def test_unknown_account_raises(notifier: Notifier) -> None:
    with pytest.raises(UnknownAccount):
        await notifier.handle("nobody", request(example_notify()))
    with pytest.raises(UnknownAccount):  # examplepay has no return channel
        await notifier.handle("shop", InboundRequest("GET", "return"))


async def test_app_id_mismatch_is_acked_not_dispatched_and_reported(
    notifier: Notifier, delivered: list[PaymentResult], caplog: pytest.LogCaptureFixture
) -> None:
    rejected: list[tuple[PaymentResult, NotificationError]] = []
    notifier.on_rejected(lambda result, error: rejected.append((result, error)))
    with caplog.at_level(logging.WARNING, logger="paynotify"):
        reply = await notifier.handle("shop", request(example_notify(app_id="other-app")))
    assert reply.body == b"OK"  # a retry cannot help, so the provider is acknowledged
    assert delivered == []
    assert len(rejected) == 1
    assert "app_id is 'other-app', this account expects 'app-1'" in str(rejected[0][1])
    assert "refused by a check" in caplog.text


async def test_check_hook_can_refuse(notifier: Notifier, delivered: list[PaymentResult]) -> None:
    expected_amounts = {"order-1": Decimal("1.00")}

    @notifier.check
    async def amount_matches(result: PaymentResult) -> bool:
        return result.amount == expected_amounts.get(result.order_id)

    rejected: list[NotificationError] = []

    @notifier.on_rejected
    def remember(result: PaymentResult, error: NotificationError) -> None:
        rejected.append(error)

    reply = await notifier.handle("shop", request(example_notify(amount="88.88")))
    assert reply.body == b"OK"
    assert delivered == []
    assert isinstance(rejected[0], CheckFailed)
    reply = await notifier.handle("shop", request(example_notify("order-1", txn_id="t2", amount="1.00")))
    assert len(delivered) == 1


async def test_check_hook_raising_checkfailed_and_crashing(
    notifier: Notifier, delivered: list[PaymentResult]
) -> None:
    calls = 0

    @notifier.check
    def check(result: PaymentResult) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise CheckFailed("unknown order")
        if calls == 2:
            raise RuntimeError("orders database down")

    assert (await notifier.handle("shop", request(example_notify()))).body == b"OK"
    # A crashing check is a temporary failure: retry, and the retry is dispatched.
    assert (await notifier.handle("shop", request(example_notify("o2")))).body == b"RETRY"
    assert delivered == []
    assert (await notifier.handle("shop", request(example_notify("o2")))).body == b"OK"
    assert [r.order_id for r in delivered] == ["o2"]


async def test_subscriber_failure_nacks_and_retry_is_dispatched(notifier: Notifier) -> None:
    attempts: list[str] = []

    @notifier.subscribe
    async def flaky(result: PaymentResult) -> None:
        attempts.append(result.event_id)
        if len(attempts) == 1:
            raise ConnectionError("warehouse API down")

    assert (await notifier.handle("shop", request(example_notify()))).body == b"RETRY"
    assert (await notifier.handle("shop", request(example_notify()))).body == b"OK"
    assert (await notifier.handle("shop", request(example_notify()))).body == b"OK"
    assert len(attempts) == 2
    assert attempts[0] == attempts[1]


async def test_sync_and_async_subscribers_and_filters(notifier: Notifier) -> None:
    import threading

    seen: dict[str, list[str]] = {"sync": [], "async": [], "paid": [], "refund": []}
    threads: list[str] = []

    @notifier.subscribe
    def sync_subscriber(result: PaymentResult) -> None:
        threads.append(threading.current_thread().name)
        seen["sync"].append(result.order_id)

    @notifier.subscribe()
    async def async_subscriber(result: PaymentResult) -> None:
        seen["async"].append(result.order_id)

    @notifier.subscribe(kind="payment", status=["succeeded"])
    async def paid_only(result: PaymentResult) -> None:
        seen["paid"].append(result.order_id)

    @notifier.subscribe(kind=Kind.REFUND)
    def refunds(result: PaymentResult) -> None:
        seen["refund"].append(result.order_id)

    await notifier.handle("shop", request(example_notify("a", status="paid")))
    await notifier.handle("shop", request(example_notify("b", status="pending")))
    assert seen == {"sync": ["a", "b"], "async": ["a", "b"], "paid": ["a"], "refund": []}
    assert threading.main_thread().name not in threads  # sync subscribers run off the event loop


def test_subscribe_rejects_unknown_filter(notifier: Notifier) -> None:
    with pytest.raises(ValueError, match="unknown status"):
        notifier.subscribe(status="paid")


async def test_concurrent_copies_dispatch_once(notifier: Notifier) -> None:
    calls = 0
    release = asyncio.Event()

    @notifier.subscribe
    async def slow(result: PaymentResult) -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    first = asyncio.create_task(notifier.handle("shop", request(example_notify())))
    await asyncio.sleep(0.01)
    copies = await asyncio.gather(*(notifier.handle("shop", request(example_notify())) for _ in range(20)))
    assert {r.body for r in copies} == {b"RETRY"}  # in flight: not acknowledged, the provider retries
    release.set()
    assert (await first).body == b"OK"
    assert calls == 1
    assert (await notifier.handle("shop", request(example_notify()))).body == b"OK"
    assert calls == 1


class BrokenStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Claim:
        if self.down:
            raise StoreError("connection refused")
        return await super().claim(result, lease_seconds=lease_seconds)


async def test_store_down_gives_failure_reply_then_recovers() -> None:
    store = BrokenStore()
    n = Notifier(store)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    seen: list[PaymentResult] = []
    n.subscribe(seen.append)
    assert (await n.handle("shop", request(example_notify()))).body == b"RETRY"
    assert seen == []
    store.down = False
    assert (await n.handle("shop", request(example_notify()))).body == b"OK"
    assert len(seen) == 1


async def test_expired_lease_is_taken_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # The store's clock pinned: the crashed worker's lease must still hold at the first resend
    # however slow a loaded machine is.
    clock = pin_store_clock(monkeypatch, at=time.time())
    n = Notifier("memory://", lease_seconds=0.05)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    result = n.accounts["shop"].provider.parse(request(example_notify()), n.accounts["shop"])
    assert isinstance(result, PaymentResult)
    crashed = await n.store.claim(result, lease_seconds=0.05)  # a worker that dies holding the claim
    assert crashed.token
    seen: list[PaymentResult] = []
    n.subscribe(seen.append)
    assert (await n.handle("shop", request(example_notify()))).body == b"RETRY"
    clock.at += 0.06
    assert (await n.handle("shop", request(example_notify()))).body == b"OK"
    assert len(seen) == 1


def test_add_account_errors_name_account_and_field() -> None:
    n = Notifier("memory://")
    with pytest.raises(ConfigurationError, match=r"account 'shop' \(examplepay\): secret: Field required"):
        n.add_account("shop", "examplepay", app_id="x")
    with pytest.raises(ConfigurationError, match="unexpected_field"):
        n.add_account("shop", "examplepay", app_id="x", secret="s", unexpected_field=1)
    with pytest.raises(ProviderNotFound, match=r"registered: .*examplepay"):
        n.add_account("shop", "no-such-provider")
    with pytest.raises(ConfigurationError, match="account name"):
        n.add_account("shop/notify", "examplepay", app_id="x", secret="s")
    n.add_account("shop", "examplepay", app_id="x", secret="s")
    with pytest.raises(ConfigurationError, match="already added"):
        n.add_account("shop", "examplepay", app_id="x", secret="s")


def test_secrets_stay_out_of_repr_and_errors() -> None:
    n = Notifier("memory://")
    account = n.add_account("shop", "examplepay", app_id="x", secret="top-secret-value")
    assert "top-secret-value" not in repr(account)
    # The secret itself is the malformed field, so its value is what an error would echo.
    with pytest.raises(ConfigurationError, match=r"secret: .*string") as info:
        n.add_account("shop2", "examplepay", app_id="x", secret=["top-secret-value"])
    assert "top-secret-value" not in str(info.value)
    assert "top-secret-value" not in repr(info.value.__cause__ or info.value.__context__)


def test_unknown_store_url() -> None:
    with pytest.raises(ConfigurationError, match="memory://"):
        Notifier("mysql://localhost/db")
