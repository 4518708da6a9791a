"""Per-subscriber completion, queued delivery (inbox, dispatcher, backoff, dead letters), redelivery,
retention, unhandled events and account updates, through the real pipeline on real stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import APP_ID, SECRET, example_notify

from paynotify import (
    Account,
    AccountSettings,
    ConfigurationError,
    DeliveryFailed,
    EventState,
    InboundRequest,
    Notifier,
    PaymentResult,
    Provider,
    Registry,
    Reply,
    UnhandledEvent,
    make_event_id,
)


def request(notify: tuple[dict[str, str], bytes]) -> InboundRequest:
    headers, body = notify
    return InboundRequest("POST", "notify", headers, b"", body)


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'events.db'}"


def make(store_url: str, **options: Any) -> Notifier:
    n = Notifier(store_url, **options)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    return n


async def until(condition: Any) -> None:
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


# -- inline, per subscriber --------------------------------------------------------------------


async def test_a_retry_runs_only_the_subscriber_that_failed(store_url: str) -> None:
    n = make(store_url)
    calls: list[str] = []
    failures = [RuntimeError("crm down")]

    @n.subscribe
    def ship(result: PaymentResult) -> None:
        calls.append("ship")

    @n.subscribe
    async def crm(result: PaymentResult) -> None:
        calls.append("crm")
        if failures:
            raise failures.pop()

    @n.subscribe
    def email(result: PaymentResult) -> None:
        calls.append("email")

    assert (await n.handle("shop", request(example_notify()))).body == b"RETRY"
    assert calls == ["ship", "crm"]  # email never started: subscribers run in order
    assert (await n.handle("shop", request(example_notify()))).body == b"OK"
    assert calls == ["ship", "crm", "crm", "email"]
    assert (await n.handle("shop", request(example_notify()))).body == b"OK"
    assert calls == ["ship", "crm", "crm", "email"]
    await n.aclose()


async def test_subscriber_names_must_be_unique(store_url: str) -> None:
    n = make(store_url)
    n.subscribe(print)
    with pytest.raises(ConfigurationError, match="already registered; pass name="):
        n.subscribe(print)
    n.subscribe(print, name="print-again")
    await n.aclose()


async def test_the_failure_reply_does_not_leak_the_subscriber_error(store_url: str) -> None:
    n = make(store_url)

    @n.subscribe
    def broken(result: PaymentResult) -> None:
        raise RuntimeError("password=hunter2")

    reply = await n.handle("shop", request(example_notify()))
    assert b"hunter2" not in reply.body
    event = await n.store.get(_event_id())
    assert event is not None
    assert event.state is EventState.RELEASED
    assert "hunter2" in (event.last_error or "")  # kept for the operator, in the store and the log
    await n.aclose()


def _event_id(order_id: str = "order-1") -> str:
    return make_event_id("shop", "payment", f"txn-{order_id}", None, "paid")


# -- queued ------------------------------------------------------------------------------------


async def test_queued_acknowledges_before_the_subscriber_runs(store_url: str) -> None:
    n = make(store_url, delivery="queued")
    release = asyncio.Event()
    seen: list[PaymentResult] = []

    @n.subscribe
    async def slow(result: PaymentResult) -> None:
        await release.wait()
        seen.append(result)

    async with n:
        assert (await n.handle("shop", request(example_notify()))).body == b"OK"
        assert seen == []  # acknowledged while the subscriber is still waiting
        assert (await n.handle("shop", request(example_notify()))).body == b"OK"  # duplicate
        release.set()
        await until(lambda: len(seen) == 1)
        await until_state(n, _event_id(), EventState.DONE)
        assert (await n.handle("shop", request(example_notify()))).body == b"OK"
        await asyncio.sleep(0.05)
    assert len(seen) == 1


async def until_state(n: Notifier, event_id: str, state: EventState) -> None:
    deadline = time.monotonic() + 5
    while True:
        event = await n.store.get(event_id)
        if event is not None and event.state is state:
            return
        assert time.monotonic() < deadline, f"event never reached {state}: {event}"
        await asyncio.sleep(0.01)


async def test_queued_retries_with_backoff_then_delivers(store_url: str) -> None:
    n = make(store_url, delivery="queued", backoff_seconds=0.05)
    failures = [RuntimeError("one"), RuntimeError("two")]
    attempts: list[float] = []

    @n.subscribe
    def flaky(result: PaymentResult) -> None:
        attempts.append(time.monotonic())
        if failures:
            raise failures.pop()

    async with n:
        await n.handle("shop", request(example_notify()))
        await until_state(n, _event_id(), EventState.DONE)
    event = await n.store.get(_event_id())
    assert event is not None
    assert event.attempts == 3
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.045  # backoff 0.05 s, then doubled
    assert attempts[2] - attempts[1] >= 0.095
    await n.aclose()


async def test_queued_dead_letters_after_max_attempts_and_retry_revives(store_url: str) -> None:
    n = make(store_url, delivery="queued", backoff_seconds=0.01, max_attempts=2)
    broken = [True]
    seen: list[PaymentResult] = []

    @n.subscribe
    def fulfil(result: PaymentResult) -> None:
        if broken[0]:
            raise RuntimeError("warehouse offline")
        seen.append(result)

    async with n:
        await n.handle("shop", request(example_notify()))
        await until_state(n, _event_id(), EventState.DEAD)
        dead = await n.store.find(states=[EventState.DEAD])
        assert [e.event_id for e in dead] == [_event_id()]
        assert "warehouse offline" in (dead[0].last_error or "")
        broken[0] = False
        assert await n.redeliver(_event_id()) is True
    assert len(seen) == 1
    assert (await n.store.get(_event_id())).state is EventState.DONE  # type: ignore[union-attr]
    await n.aclose()


async def test_queued_with_the_store_down_gets_the_failure_reply(store_url: str) -> None:
    n = make(store_url, delivery="queued")

    async def down(result: PaymentResult) -> bool:
        from paynotify import StoreError

        raise StoreError("connection refused")

    n.store.enqueue = down  # type: ignore[method-assign]
    assert (await n.handle("shop", request(example_notify()))).body == b"RETRY"
    await n.aclose()


async def test_a_web_process_without_dispatcher_leaves_events_to_a_worker(store_url: str) -> None:
    web = make(store_url, delivery="queued", dispatcher=False)
    seen: list[PaymentResult] = []
    web.subscribe(seen.append)
    async with web:
        await web.handle("shop", request(example_notify()))
        await asyncio.sleep(0.1)
        assert seen == []
        worker = Notifier(web.store, delivery="queued")
        worker.subscribe(seen.append)
        async with worker:
            await until(lambda: len(seen) == 1)


async def test_replay_runs_every_subscriber_again(store_url: str) -> None:
    n = make(store_url)
    seen: list[str] = []
    n.subscribe(lambda r: seen.append("a"), name="a")
    n.subscribe(lambda r: seen.append("b"), name="b")
    await n.handle("shop", request(example_notify()))
    assert await n.redeliver(_event_id()) is False  # a retry of a completed event does nothing
    assert await n.redeliver(_event_id(), replay=True) is True
    assert seen == ["a", "b", "a", "b"]
    await n.aclose()


async def test_redelivery_that_fails_raises_and_keeps_the_event(store_url: str) -> None:
    n = make(store_url)
    n.subscribe(lambda r: 1 / 0, name="divide")
    await n.handle("shop", request(example_notify()))
    with pytest.raises(DeliveryFailed, match="ZeroDivisionError"):
        await n.redeliver(_event_id())
    assert (await n.store.get(_event_id())).state is EventState.RELEASED  # type: ignore[union-attr]
    await n.aclose()


async def test_purge_keeps_recent_events(store_url: str) -> None:
    n = make(store_url, retention_days=30)
    await n.handle("shop", request(example_notify()))
    assert await n.purge() == 0
    assert await n.purge(older_than_days=-1) == 1
    assert await n.store.get(_event_id()) is None
    await n.aclose()


async def test_purge_takes_the_stores_filters(store_url: str) -> None:
    n = make(store_url)
    n.add_account("other", "examplepay", app_id=APP_ID, secret=SECRET)
    for account, order in (("shop", "order-1"), ("shop", "order-2"), ("other", "order-1")):
        await n.handle(account, request(example_notify(order)))
    assert await n.purge(older_than_days=-1, account="shop", order_id="order-2") == 1
    assert await n.purge(older_than_days=-1, created_after=time.time() + 60) == 0
    assert await n.purge(older_than_days=-1, account="shop", provider="examplepay") == 1
    assert [e.account for e in await n.store.find()] == ["other"]
    await n.aclose()


def test_delivery_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="delivery must be"):
        Notifier("memory://", delivery="later")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_attempts must be positive"):
        Notifier("memory://", max_attempts=0)


# -- unhandled events --------------------------------------------------------------------------


class PingSettings(AccountSettings):
    pass


class PingProvider(Provider[PingSettings]):
    """Verifies nothing: only for routing an UnhandledEvent through the pipeline."""

    name = "ping"
    settings_model = PingSettings
    channels: ClassVar[frozenset[str]] = frozenset({"notify"})

    def parse(self, request: InboundRequest, account: Account[PingSettings]) -> UnhandledEvent:
        return UnhandledEvent(
            provider=self.name, account=account.name, event_type="PING", event_id="ping-1", raw={}
        )

    def ack(self) -> Reply:
        return Reply.text("OK")

    def nack(self, error: Exception) -> Reply:
        return Reply.text("RETRY", 500)


async def test_unhandled_events_go_to_hooks_never_to_subscribers() -> None:
    n = Notifier("memory://", registry=Registry(group=None))
    n.registry.register(PingProvider)
    n.add_account("p", "ping")
    seen: list[object] = []
    n.subscribe(seen.append)
    hooked: list[UnhandledEvent] = []
    n.on_unhandled(hooked.append)
    assert (await n.handle("p", InboundRequest("POST", "notify", {}, b"", b"{}"))).body == b"OK"
    assert seen == []
    assert [e.event_type for e in hooked] == ["PING"]

    @n.on_unhandled
    def broken(event: UnhandledEvent) -> None:
        raise RuntimeError("hook down")

    assert (await n.handle("p", InboundRequest("POST", "notify", {}, b"", b"{}"))).body == b"RETRY"


# -- account updates ---------------------------------------------------------------------------


@pytest.fixture
async def notifier_with_shop() -> AsyncIterator[Notifier]:
    n = make("memory://")
    yield n
    await n.aclose()


async def test_update_account_swaps_settings_and_refuses_bad_ones(notifier_with_shop: Notifier) -> None:
    n = notifier_with_shop
    seen: list[PaymentResult] = []
    n.subscribe(seen.append)
    n.update_account("shop", app_id=APP_ID, secret="rotated-secret")
    assert (await n.handle("shop", request(example_notify()))).body == b"RETRY"  # old secret: refused
    ok = example_notify("order-2", secret="rotated-secret")
    assert (await n.handle("shop", request(ok))).body == b"OK"
    with pytest.raises(ConfigurationError, match="'shop'"):
        n.update_account("shop", app_id=APP_ID)  # secret missing
    assert (await n.handle("shop", request(example_notify("order-3", secret="rotated-secret")))).body == b"OK"
    with pytest.raises(ConfigurationError, match="no account 'nope'"):
        n.update_account("nope", app_id=APP_ID, secret=SECRET)
    assert len(seen) == 2


async def test_replace_accounts_is_all_or_nothing(notifier_with_shop: Notifier) -> None:
    n = notifier_with_shop
    with pytest.raises(ConfigurationError):
        n.replace_accounts(
            {
                "shop": ("examplepay", {"app_id": APP_ID, "secret": "new"}),
                "broken": ("examplepay", {"app_id": APP_ID}),
            }
        )
    assert set(n.accounts) == {"shop"}
    assert n.accounts["shop"].settings.secret.get_secret_value() == SECRET
    n.replace_accounts({"shop2": ("examplepay", {"app_id": APP_ID, "secret": SECRET})})
    assert set(n.accounts) == {"shop2"}


def test_replace_accounts_checks_every_name_as_add_account_does(notifier_with_shop: Notifier) -> None:
    n = notifier_with_shop
    for bad in ("bad name", "../shop", ""):
        with pytest.raises(ConfigurationError, match="must be 1-64 characters"):
            n.replace_accounts({bad: ("examplepay", {"app_id": APP_ID, "secret": SECRET})})
    assert list(n.accounts) == ["shop"]


def test_a_return_is_never_paid_even_when_it_says_succeeded() -> None:
    fields: dict[str, Any] = {
        "provider": "examplepay", "account": "shop", "kind": "payment", "status": "succeeded",
        "provider_status": "TRADE_SUCCESS", "order_id": "o-1", "event_id": "e-1",
    }  # fmt: skip
    assert PaymentResult(**fields).is_paid
    assert not PaymentResult(**fields, source="return").is_paid
    assert not PaymentResult(**(fields | {"kind": "refund"})).is_paid
