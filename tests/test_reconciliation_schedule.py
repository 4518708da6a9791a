"""The daily reconciliation (`paynotify serve` and `worker`): yesterday (Beijing) of every account
with bills, after the publication time, once (the stored report, across restarts and instances),
under the (account, day) lease, within its deadline; a failed day tried again later. Then the whole
path with the Alipay emulator: a lost payment healed by the scheduled run, delivered once."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import httpx
import pytest
from _ledger_provider import DAY, LedgerEmulator, LedgerProvider, PinnedClock, pin_store_clock
from _store_backends import backend_stores
from conftest import APP_ID, SECRET
from paynotify_alipay import AlipayProvider
from paynotify_alipay.testing import AlipayEmulator

from paynotify import BEIJING, ConfigurationError, Notifier, Options, PaymentResult, Store
from paynotify.reconciliation import DailyReconciliation
from paynotify.recovery import EmulatorTransport


def beijing(day: date, hour: int, minute: int = 0) -> float:
    return datetime.combine(day, clock_time(hour, minute), BEIJING).timestamp()


NEXT_MORNING = beijing(DAY + timedelta(days=1), 10, 31)
"""The day after DAY, past the default publication time (10:30 Beijing)."""


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    return pin_store_clock(monkeypatch)


def shop(store: Store | str) -> tuple[Notifier, LedgerEmulator, list[PaymentResult]]:
    emu = LedgerEmulator()
    notifier = Notifier(store, api_transport=EmulatorTransport({emu.host: emu}))
    notifier.add_account("shop", LedgerProvider(), **emu.account_settings())
    notifier.add_account("plain", "examplepay", app_id=APP_ID, secret=SECRET)  # no bills: left alone
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    return notifier, emu, delivered


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql", "redis"])
async def test_yesterday_is_reconciled_once_after_publication_even_across_restarts(
    backend: str, tmp_path: Path
) -> None:
    async with backend_stores(backend, tmp_path) as make:
        notifier, emu, delivered = shop(make())
        clock = Clock(beijing(DAY + timedelta(days=1), 10, 29))
        async with notifier:
            emu.pay("o-1", "1.00")
            emu.pay("o-2", "2.00")
            await notifier.query("shop", "o-1")
            delivered.clear()
            daily = DailyReconciliation(notifier, clock=clock)
            assert await daily.run_once() == []  # 10:29: not published yet
            assert emu.requests == ["/query"]
            clock.at = NEXT_MORNING
            (report,) = await daily.run_once()
            assert (report.account, report.day, report.healed) == ("shop", DAY.isoformat(), 1)  # heal=True
            assert [r.order_id for r in delivered] == ["o-2"]
            asked = len(emu.requests)
            clock.at += 3600
            assert await daily.run_once() == []  # done: its report is stored
            assert len(emu.requests) == asked
        # A restart (another Notifier, the same store): the day is done, nothing asked again.
        again, emu_again, _ = shop(make())
        async with again:
            assert await DailyReconciliation(again, clock=Clock(NEXT_MORNING + 60)).run_once() == []
            assert emu_again.requests == []
            stored = await again.store.reconciliations.report("shop", DAY)
        assert stored is not None
        assert (stored.heal, stored.healed) == (True, 1)
        assert len(delivered) == 1


async def test_a_day_another_instance_holds_is_left_to_it_and_a_failed_day_is_tried_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier, emu, _ = shop("memory://")
    clock = Clock(NEXT_MORNING)
    async with notifier:
        emu.pay("o-1", "1.00")
        leases = notifier.store.reconciliations
        token = await leases.take_lease("shop", DAY, seconds=300)
        assert token is not None
        daily = DailyReconciliation(notifier, heal=False, clock=clock, retry_seconds=600)
        assert await daily.run_once() == []  # another instance is on it
        assert daily.failed == {}  # not a failure: tried again next round
        assert await leases.release_lease("shop", DAY, token)
        emu.extra_lines.append("payment,broken")  # the bill is refused (a malformed line)
        with caplog.at_level(logging.WARNING, logger="paynotify"):
            assert await daily.run_once() == []
        assert "line 3" in caplog.text
        assert daily.failed == {("shop", DAY.isoformat()): NEXT_MORNING + 600}
        emu.extra_lines.clear()
        clock.at += 599
        assert await daily.run_once() == []  # not yet
        clock.at += 1
        (report,) = await daily.run_once()
        assert (report.counts["missing"], report.healed) == (1, 0)
        assert daily.failed == {}


async def test_each_run_is_bounded_by_its_deadline_and_its_lease_released() -> None:
    notifier, emu, _ = shop("memory://")
    async with notifier:
        emu.pay("o-1", "1.00")
        emu.body_delay = 0.5  # a bill trickling in, slower than the deadline allows
        daily = DailyReconciliation(notifier, clock=Clock(NEXT_MORNING), timeout=0.2)
        assert await daily.run_once() == []
        assert ("shop", DAY.isoformat()) in daily.failed
        assert await notifier.store.reconciliations.take_lease("shop", DAY, seconds=60) is not None


def test_the_options_turn_it_on_and_off_and_refuse_a_bad_time(tmp_path: Path) -> None:
    config = tmp_path / "paynotify.toml"
    account = f'[accounts.shop]\nprovider = "examplepay"\napp_id = "{APP_ID}"\nsecret_env = "PN_SECRET"\n'
    config.write_text('reconcile = false\nreconcile_heal = false\nreconcile_after = "11:05"\n' + account)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PN_SECRET", SECRET)
        options = Notifier.from_config(config).options
    assert (options.reconcile, options.reconcile_heal, options.reconcile_after) == (False, False, "11:05")
    assert (Options().reconcile, Options().reconcile_heal, Options().reconcile_after) == (None, True, "10:30")
    with pytest.raises(ConfigurationError, match="reconcile_after"):
        Options(reconcile_after="25:00")
    with pytest.raises(ConfigurationError, match="reconcile_after"):
        Options(reconcile_after="9")
    with pytest.raises(ConfigurationError, match="reconcile and reconcile_heal"):
        Options(reconcile="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(("option", "by_default", "runs"), [
    (None, False, False), (None, True, True), (False, True, False), (True, False, True),
])  # fmt: skip
async def test_open_runs_it_in_serve_and_worker_unless_turned_off(
    option: bool | None, by_default: bool, runs: bool
) -> None:
    notifier = Notifier("memory://", reconcile=option, reconcile_after="09:15", reconcile_heal=False)
    notifier.sweeps_by_default = by_default  # what paynotify serve and worker set
    async with notifier:
        daily = notifier.daily
        assert (daily is not None) is runs
        if daily is not None:
            assert (daily.after, daily.heal) == (clock_time(9, 15), False)
    assert notifier.daily is None


async def test_the_scheduled_run_heals_a_payment_alipay_never_notified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Alipay emulator's ledger: order-1 notified, order-2 paid but its notification lost."""
    pin_store_clock(monkeypatch, beijing(DAY, 12))
    alipay_clock = Clock(beijing(DAY, 11))
    emu = AlipayEmulator(clock=alipay_clock)
    notifier = Notifier("memory://", api_transport=EmulatorTransport({"alipay.emulator": emu}))
    notifier.add_account("shop", AlipayProvider(), **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    async with notifier:
        app = httpx.AsyncClient(transport=httpx.ASGITransport(app=notifier.asgi()), base_url="http://shop")
        async with app:
            emu.pay("order-1", total_amount="88.88")
            assert await emu.push(app, "/shop/notify", order="order-1") == [200]
            emu.pay("order-2", total_amount="10.00")
            assert await emu.push(app, "/shop/notify", order="order-2", drop=True) == []
        alipay_clock.at = NEXT_MORNING
        daily = DailyReconciliation(notifier, clock=Clock(NEXT_MORNING))
        (report,) = await daily.run_once()
        assert (report.lines, report.matched, report.counts["missing"], report.healed) == (2, 1, 1, 1)
        (healed,) = [d for d in report.discrepancies if d.healed]
        assert (healed.order_id, healed.healed) == ("order-2", "delivered")
        assert await daily.run_once() == []
        stored = await notifier.store.reconciliations.report("shop", DAY)
    assert [r.order_id for r in delivered] == ["order-1", "order-2"]
    assert stored is not None
    assert stored.open_counts == {"missing": 0, "unknown": 0, "amount_mismatch": 0, "state_mismatch": 0}


async def test_stopping_cuts_a_run_short_and_releases_its_lease() -> None:
    notifier, emu, _ = shop("memory://")
    async with notifier:
        emu.pay("o-1", "1.00")
        emu.body_delay = 30.0  # never done before the stop
        asked, answer = asyncio.Event(), emu.answer

        def answer_and_tell(path: str, query: dict[str, str]) -> tuple[int, bytes]:
            if path == "/bill":
                asked.set()
            return answer(path, query)

        emu.answer = answer_and_tell  # type: ignore[method-assign]
        daily = DailyReconciliation(notifier, clock=Clock(NEXT_MORNING), start_delay=0).start()
        await asyncio.wait_for(asked.wait(), 5)  # the run has begun: the bill is being sent
        await asyncio.wait_for(daily.aclose(), 5)
        assert await notifier.store.reconciliations.take_lease("shop", DAY, seconds=60) is not None
        assert await notifier.store.reconciliations.report("shop", DAY) is None
