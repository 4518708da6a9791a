"""`Notifier.reconcile` over the Alipay emulator: every discrepancy kind found from its GBK ZIP bill,
a lost payment and refund healed once (verified queries) and never twice, nothing healed that Alipay
does not confirm, a malformed bill refused by its line and a forged answer refused before anything
is healed. The bill's day is pinned, and so is every clock (the emulator's and the store's)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from paynotify_alipay import AlipayProvider
from paynotify_alipay.testing import AlipayEmulator, generate_key

from paynotify import BEIJING, BillFormatError, Notifier, Outcome, PaymentResult, VerificationError
from paynotify.reconciliation import ReconciliationReport
from paynotify.recovery import EmulatorTransport

DAY = date(2026, 11, 3)
NEXT = date(2026, 11, 4)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BEIJING)


class Clock:
    def __init__(self) -> None:
        self.now = at(DAY, 9).timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


@functools.cache
def keys() -> tuple[Any, Any, Any]:
    return generate_key(), generate_key(), generate_key()


@dataclass
class Shop:
    notifier: Notifier
    emu: AlipayEmulator
    clock: Clock
    delivered: list[PaymentResult]

    async def record(self, order: str, refund: str | None = None) -> None:
        """The shop hears of it (here by asking; a notification records the same event)."""
        answer = await self.notifier.query("shop", order, refund_id=refund)
        assert answer.outcome is Outcome.DELIVERED

    async def reconcile(self, *, heal: bool = False) -> ReconciliationReport:
        self.clock.set(at(NEXT, 11))  # the bill is published
        return await self.notifier.reconcile("shop", DAY, heal=heal)


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Shop:
    clock = Clock()
    monkeypatch.setattr("paynotify._stores.memory.now", clock)  # events recorded on the pinned day
    alipay, app, _ = keys()
    emu = AlipayEmulator(alipay_key=alipay, app_key=app, clock=clock)
    notifier = Notifier("memory://", api_transport=EmulatorTransport({"alipay.emulator": emu}))
    notifier.add_account("shop", AlipayProvider(), **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    return Shop(notifier, emu, clock, delivered)


def kinds(report: ReconciliationReport) -> list[tuple[str, int | None, str]]:
    return [(d.kind.value, d.line, d.order_id) for d in report.discrepancies]


async def test_every_discrepancy_kind_is_found(shop: Shop) -> None:
    async with shop.notifier:
        for i in range(1, 6):
            shop.emu.pay(f"o-{i}", total_amount=f"{i}.00")
        shop.emu.pay("o-6", total_amount="6.00", trade_status="WAIT_BUYER_PAY")
        shop.clock.set(at(DAY, 10))
        shop.emu.refund("rf-1", "o-1", refund_amount="0.50")
        for order in ("o-1", "o-2", "o-3", "o-4"):
            await shop.record(order)
        await shop.record("o-1", "rf-1")
        # The shop saw o-6 unpaid (pending); the bill lists it as paid; o-5 was never recorded.
        assert (await shop.notifier.query("shop", "o-6")).outcome is Outcome.DELIVERED
        faults = shop.emu.bill_faults
        faults.amounts["o-2"] = "2.01"
        faults.listed_as_paid.add("o-6")
        faults.missing.add("o-4")
        faults.unrecorded.append(("o-ghost", "9.99"))
        report = await shop.reconcile()
    assert report.provider == "alipay"
    assert (report.lines, report.matched) == (7, 3)  # o-1, o-3 and rf-1
    assert report.counts == {"missing": 2, "unknown": 1, "amount_mismatch": 1, "state_mismatch": 1}
    # The details file's own line numbers: 4 comment lines and the header first, o-1 on line 6;
    # the payments in order (o-4 left out), then the refund (line 11), then the unrecorded line.
    assert kinds(report) == [
        ("amount_mismatch", 7, "o-2"),
        ("missing", 9, "o-5"),
        ("state_mismatch", 10, "o-6"),
        ("missing", 12, "o-ghost"),
        ("unknown", None, "o-4"),
    ]
    by_order = {d.order_id: d for d in report.discrepancies}
    assert (by_order["o-2"].bill_amount, by_order["o-2"].recorded_amount) == ("2.01", "2.00")
    assert (by_order["o-6"].bill_status, by_order["o-6"].recorded_status) == ("succeeded", "pending")
    assert report.healed == 0


async def test_a_lost_payment_and_refund_are_healed_once_and_never_twice(shop: Shop) -> None:
    async with shop.notifier:
        shop.emu.pay("o-1", total_amount="1.00")
        shop.emu.pay("o-2", total_amount="88.88")
        shop.clock.set(at(DAY, 15))
        shop.emu.refund("rf-1", "o-1", refund_amount="0.30")
        await shop.record("o-1")
        shop.delivered.clear()
        first = await shop.reconcile(heal=True)
        assert (first.counts["missing"], first.healed) == (2, 2)
        assert {(d.order_id, d.record_kind, d.healed) for d in first.discrepancies} == {
            ("o-2", "payment", "delivered"),
            ("o-1", "refund", "delivered"),
        }
        assert sorted(
            (r.kind.value, r.order_id, str(r.refund_amount or r.amount)) for r in shop.delivered
        ) == [
            ("payment", "o-2", "88.88"),
            ("refund", "o-1", "0.30"),
        ]
        second = await shop.reconcile(heal=True)
        third = await shop.reconcile(heal=True)
    assert len(shop.delivered) == 2  # nothing delivered twice
    assert (second.matched, second.counts["missing"], second.healed) == (3, 0, 0)
    assert second.same_as(third)
    assert second.open_counts() == dict.fromkeys(second.counts, 0)


async def test_nothing_alipay_does_not_confirm_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.emu.pay("o-1", total_amount="5.00")
        shop.emu.bill_faults.unrecorded.append(("o-ghost", "9.99"))
        shop.emu.bill_faults.amounts["o-1"] = "50.00"
        report = await shop.reconcile(heal=True)
    assert report.healed == 0
    # The query delivered what Alipay's verified answer says (o-1 paid 5.00), never the bill's.
    assert [(r.order_id, str(r.amount)) for r in shop.delivered] == [("o-1", "5.00")]
    notes = {d.order_id: (d.healed, d.note) for d in report.discrepancies}
    assert notes["o-ghost"] == (None, "not healed: the provider knows no such order")
    assert notes["o-1"][0] is None
    assert "5.00" in notes["o-1"][1]


async def test_a_malformed_bill_is_refused_by_its_line_and_nothing_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.emu.pay("o-1", total_amount="1.00")
        shop.emu.pay("o-2", total_amount="2.00")
        shop.emu.bill_faults.malformed[7] = "2026110322001,o-2,交易"
        with pytest.raises(BillFormatError, match="line 7") as caught:
            await shop.reconcile(heal=True)
    assert caught.value.line == 7
    assert shop.delivered == []


async def test_a_forged_bill_answer_is_refused_and_nothing_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.emu.pay("o-1", total_amount="1.00")
        shop.emu.answer_key = keys()[2]  # the bill URL's answer signed by a forger
        with pytest.raises(VerificationError):
            await shop.reconcile(heal=True)
    assert shop.delivered == []
    assert shop.emu._bill_tokens  # the URL it named was never downloaded
