"""Every verified notification is on record: rejected ones (and their recovery by replay after the
account is fixed), unhandled ones, every subscriber that succeeded; and closing lets deliveries in
progress finish. Real Alipay notifications signed with throwaway keys, on the memory and SQLite
stores."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import example_notify
from paynotify_alipay.testing import SELLER_ID, generate_key, make_notify, make_return, public_key_pem
from test_delivery import PingProvider, PingSettings, make, request, until

from paynotify import (
    Account,
    CheckFailed,
    ConfigurationError,
    EventState,
    InboundRequest,
    NotificationError,
    Notifier,
    Observer,
    Options,
    Outcome,
    PaymentResult,
    Registry,
    StoreError,
    UnhandledEvent,
    make_event_id,
)
from paynotify.cli._main import main

ALIPAY_APP_ID = "2021004100000000"
TYPO = "2088000000000009"  # one digit off the SELLER_ID the notifications carry
KEY = generate_key()


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'events.db'}"


def alipay(store_url: str, seller_id: str) -> Notifier:
    n = Notifier(store_url)
    n.add_account(
        "shop", "alipay", app_id=ALIPAY_APP_ID, alipay_public_key=public_key_pem(KEY), seller_id=seller_id
    )
    return n


def notify(order_id: str) -> InboundRequest:
    body = make_notify(KEY, app_id=ALIPAY_APP_ID, out_trade_no=order_id)
    return InboundRequest("POST", "notify", {"content-type": "application/x-www-form-urlencoded"}, b"", body)


async def test_a_mistyped_seller_id_loses_nothing_fix_and_replay_delivers_every_payment(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    n = alipay(store_url, seller_id=TYPO)  # one digit off the real SELLER_ID
    delivered: list[str] = []
    told: list[tuple[str, str]] = []
    n.subscribe(lambda r: delivered.append(r.order_id), name="ship")
    n.on_rejected(lambda r, e: told.append((r.order_id, e.message)))
    orders = [f"o-{i}" for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="paynotify"):
        for order in orders:
            # Acknowledged (Alipay's resend would be refused the same way), not delivered, recorded.
            assert (await n.handle("shop", notify(order))).body == b"success"
    assert delivered == []
    assert [o for o, _ in told] == orders
    assert f"this account expects '{TYPO}'" in told[0][1]
    assert sum("recorded as rejected" in r.message for r in caplog.records) == 5
    rejected = await n.store.find(states=[EventState.REJECTED])
    assert sorted(e.order_id for e in rejected) == orders
    assert all("merchant_id is '" + SELLER_ID + "'" in (e.last_error or "") for e in rejected)

    # Replay before the fix: refused again with the same reason, still on record.
    with pytest.raises(CheckFailed, match=f"this account expects '{TYPO}'"):
        await n.redeliver(rejected[0].event_id, replay=True)
    assert not await n.redeliver(rejected[0].event_id)  # a plain retry never bypasses the checks
    assert delivered == []

    n.update_account("shop", app_id=ALIPAY_APP_ID, alipay_public_key=public_key_pem(KEY), seller_id=SELLER_ID)
    for event in rejected:
        assert await n.redeliver(event.event_id, replay=True)
    assert sorted(delivered) == orders
    assert await n.store.find(states=[EventState.REJECTED]) == []
    for event in rejected:
        found = await n.store.get(event.event_id)
        assert found is not None
        assert (found.state, found.done_subscribers) == (EventState.DONE, frozenset({"ship"}))
    # Alipay's later resends of the same payments are duplicates now.
    assert (await n.handle("shop", notify("o-0"))).body == b"success"
    assert len(delivered) == 5
    await n.aclose()


async def test_events_replay_rejected_from_the_cli_after_the_config_is_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "alipay.pem"
    key.write_text(public_key_pem(KEY))
    sink = tmp_path / "sink.txt"
    (tmp_path / "records_sink.py").write_text(
        "def ship(result):\n"
        f"    with open({str(sink)!r}, 'a') as f:\n"
        "        f.write(result.order_id + '\\n')\n"
    )
    cfg = tmp_path / "paynotify.toml"

    def write(seller: str) -> None:
        cfg.write_text(
            f'store = "sqlite:///events.db"\nsubscribers = ["records_sink:ship"]\n'
            f'[accounts.shop]\nprovider = "alipay"\napp_id = "{ALIPAY_APP_ID}"\n'
            f'alipay_public_key_file = "alipay.pem"\nseller_id = "{seller}"\n'
        )

    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        write(TYPO)
        n = Notifier.from_config(cfg)
        for order in ("a", "b"):
            assert (await n.handle("shop", notify(order))).body == b"success"
        await n.aclose()
        listing = ["events", "--config", str(cfg), "list", "--state", "rejected"]
        assert await asyncio.to_thread(main, listing) == 0
        assert capsys.readouterr().out.count(" rejected ") == 2
        write(SELLER_ID)
        assert await asyncio.to_thread(main, ["events", "--config", str(cfg), "replay", "--rejected"]) == 0
        assert "2 delivered, 0 not" in capsys.readouterr().out
        assert sorted(sink.read_text().split()) == ["a", "b"]
    finally:
        sys.path.remove(str(tmp_path))


async def test_a_rejection_with_the_store_down_asks_the_provider_to_retry() -> None:
    n = alipay("memory://", seller_id=TYPO)

    async def down(*args: Any, **kwargs: Any) -> bool:
        raise StoreError("store unreachable")

    n.store.record = down  # type: ignore[method-assign]
    assert (await n.handle("shop", notify("o-1"))).body == b"fail"  # not lost: Alipay resends


async def test_an_event_delivered_to_two_subscribers_shows_both(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    n = make(store_url)
    n.subscribe(lambda r: None, name="ledger")
    n.subscribe(lambda r: None, name="mailer")
    assert (await n.handle("shop", request(example_notify("o-1")))).body == b"OK"
    (event,) = await n.store.find()
    assert event.done_subscribers == {"ledger", "mailer"}
    await n.aclose()
    if store_url.startswith("sqlite"):  # what an operator sees, from another process's view
        assert await asyncio.to_thread(main, ["events", "--store", store_url, "list", "--json"]) == 0
        assert '"done_subscribers": ["ledger", "mailer"]' in capsys.readouterr().out
    await n.aclose()


async def test_unhandled_events_are_recorded_with_their_content(store_url: str) -> None:
    n = Notifier(store_url, registry=Registry(group=None))
    n.registry.register(PingProvider)
    n.add_account("ops", "ping")
    seen: list[UnhandledEvent] = []
    n.on_unhandled(seen.append)
    assert (await n.handle("ops", InboundRequest("POST", "notify"))).body == b"OK"
    event = await n.store.get("ping-1")
    assert event is not None
    assert (event.state, event.status) == (EventState.UNHANDLED, "PING")
    assert event.unhandled() == seen[0]
    await n.aclose()


async def test_purge_keeps_rejected_and_unhandled_as_long_as_completed_events(store_url: str) -> None:
    n = alipay(store_url, seller_id=TYPO)
    assert (await n.handle("shop", notify("o-1"))).body == b"success"
    assert await n.purge() == 0  # younger than retention_days
    assert await n.purge(older_than_days=0.0) == 1
    assert await n.store.find() == []


async def test_a_check_hook_that_crashes_on_a_sync_return_shows_the_buyer_a_page() -> None:
    n = alipay("memory://", seller_id=SELLER_ID)

    @n.check
    def crash(result: PaymentResult) -> bool:
        raise RuntimeError("orders database down")

    query = make_return(KEY, app_id=ALIPAY_APP_ID, out_trade_no="o-1")
    reply = await n.handle("shop", InboundRequest("GET", "return", {}, query, b""))
    assert reply.content_type == "text/html; charset=utf-8"
    assert b"fail" not in reply.body
    assert reply.status == 500


def test_hooks_are_typed_with_their_aliases() -> None:
    # The check is mypy's (CI runs it strict, with unused ignores an error): the wrong-arity hooks
    # below are refused, so their `type: ignore[type-var]` is needed; were the decorators untyped,
    # the ignores would be unused and mypy would fail. At run time hooks return unchanged.
    n = Notifier("memory://")

    def rejected(result: PaymentResult, error: NotificationError) -> None: ...

    def one_argument_too_few(result: PaymentResult) -> None: ...

    assert n.on_rejected(rejected) is rejected
    n.on_rejected(one_argument_too_few)  # type: ignore[type-var]
    n.check(lambda result, extra: True)  # type: ignore[type-var]
    n.on_unhandled(lambda: None)  # type: ignore[type-var]


# -- the queued schedule, as one pure function ---------------------------------------------------


def test_the_retry_schedule_is_exact() -> None:
    options = Options(delivery="queued", backoff_seconds=5, max_backoff_seconds=30, max_attempts=6)
    assert [options.retry_delay(a) for a in range(1, 7)] == [5.0, 10.0, 20.0, 30.0, 30.0, None]
    assert Options(max_attempts=1).retry_delay(1) is None


async def test_dead_lettered_after_exactly_max_attempts() -> None:
    n = make("memory://", delivery="queued", max_attempts=3, backoff_seconds=0.01)
    attempts: list[int] = []

    @n.subscribe
    def always_fails(result: PaymentResult) -> None:
        attempts.append(1)
        raise RuntimeError("ledger down")

    async with n:
        assert (await n.handle("shop", request(example_notify("o-1")))).body == b"OK"
        await until(lambda: len(attempts) >= 3)
        (event,) = await n.store.find()
        await until(lambda: n.store._records[event.event_id].state is EventState.DEAD)  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)
    (event,) = await n.store.find()
    assert (event.state, event.attempts, len(attempts)) == (EventState.DEAD, 3, 3)


# -- closing ---------------------------------------------------------------------------------------


async def test_close_lets_an_inline_delivery_in_progress_finish(store_url: str) -> None:
    n = make(store_url, close_timeout=5)
    started, finished = asyncio.Event(), []

    @n.subscribe
    async def slow(result: PaymentResult) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(result.order_id)

    await n.open()
    handling = asyncio.create_task(n.handle("shop", request(example_notify("o-1"))))
    await started.wait()
    await n.aclose()
    assert finished == ["o-1"]
    assert (await handling).body == b"OK"


async def test_close_lets_a_queued_delivery_finish_then_hands_back_what_overruns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    n = make(url, delivery="queued", close_timeout=0.2)
    started = asyncio.Event()

    @n.subscribe
    async def stuck(result: PaymentResult) -> None:
        started.set()
        await asyncio.sleep(30)

    await n.open()
    assert (await n.handle("shop", request(example_notify("o-1")))).body == b"OK"
    await started.wait()
    await n.aclose()  # well before the 60 s lease
    other = make(url)
    (event,) = await other.store.find()
    # Due now, not leased: another process takes it at once instead of after the lease.
    assert event.state is EventState.PENDING
    assert event.last_error == "interrupted by shutdown"
    (lease,) = await other.store.acquire(limit=1, lease_seconds=60)
    assert lease.event.event_id == event.event_id
    await other.aclose()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be positive, not 0"),
        ({"lease_seconds": float("nan")}, "lease_seconds must be positive, not nan"),
        ({"concurrency": True}, "concurrency must be a whole number, not True"),
        ({"body_limit": 1.5}, "body_limit must be a whole number, not 1.5"),
    ],
)
def test_options_refuse_nonsense(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Options(**bad)
    assert str(refused.value) == message


def test_options_take_the_smallest_sensible_values() -> None:
    edge = Options(max_attempts=1, lease_seconds=0.001, concurrency=1, body_limit=1)
    assert (edge.max_attempts, edge.concurrency, edge.body_limit) == (1, 1, 1)


class CombinedProvider(PingProvider):
    """Returns one payment per sub-order of a combined notification (body: sub-order ids)."""

    name = "combined"

    def parse(self, request: InboundRequest, account: Account[PingSettings]) -> list[PaymentResult]:  # type: ignore[override]
        orders = request.body.decode().split(",")
        return [
            PaymentResult(
                provider=self.name, account=account.name, kind="payment", status="succeeded",
                provider_status="SUCCESS", order_id=order,
                event_id=make_event_id(account.name, "payment", order),
            )
            for order in orders
        ]  # fmt: skip


async def test_a_combined_notification_is_acknowledged_once_every_sub_order_is_delivered() -> None:
    n = Notifier("memory://", registry=Registry(group=None))
    n.registry.register(CombinedProvider)
    n.add_account("shop", "combined")
    delivered: list[str] = []
    fail_once = {"sub-2"}

    @n.subscribe(name="ship")
    def ship(result: PaymentResult) -> None:
        if result.order_id in fail_once:
            fail_once.discard(result.order_id)
            raise RuntimeError("ledger down")
        delivered.append(result.order_id)

    combined = InboundRequest("POST", "notify", {}, b"", b"sub-1,sub-2,sub-3")
    assert (await n.handle("shop", combined)).body == b"RETRY"  # sub-2 failed: not acknowledged
    assert delivered == ["sub-1"]
    assert (await n.handle("shop", combined)).body == b"OK"  # the resend: only what was not done
    assert delivered == ["sub-1", "sub-2", "sub-3"]
    assert (await n.handle("shop", combined)).body == b"OK"  # a duplicate of all three
    assert len(delivered) == 3
    assert {e.state for e in await n.store.find()} == {EventState.DONE}


class EmptyCombinedProvider(CombinedProvider):
    """A combined notification that verifies but names no sub-order at all."""

    name = "empty-combined"

    def parse(self, request: InboundRequest, account: Account[PingSettings]) -> list[PaymentResult]:  # type: ignore[override]
        return []


class Outcomes(Observer):
    def __init__(self) -> None:
        self.seen: list[Outcome] = []

    def answered(self, provider: str, account: str, channel: str, outcome: Outcome, seconds: float) -> None:
        self.seen.append(outcome)


async def test_a_combined_notification_with_no_result_is_refused_as_malformed_not_a_crash() -> None:
    n = Notifier("memory://", registry=Registry(group=None))
    n.registry.register(EmptyCombinedProvider)
    n.add_account("shop", "empty-combined")
    outcomes = Outcomes()
    n.observe(outcomes)
    delivered: list[PaymentResult] = []
    n.subscribe(delivered.append, name="ship")
    reply = await n.handle("shop", InboundRequest("POST", "notify", {}, b"", b""))
    assert (reply.status, reply.body) == (500, b"RETRY")  # the provider's own failure reply, not an error
    assert outcomes.seen == [Outcome.MALFORMED]
    assert delivered == []
    assert await n.store.find() == []
