"""`Notifier.reconcile` over the UnionPay emulator: every discrepancy kind found from its ZM file,
a malformed line refused by its number and a forged file answer refused before anything is healed.

Healing: a UnionPay query names a transaction by merId + orderId + txnTime (the merchant's 订单发送时间),
and the ZM file carries UnionPay's 交易传输时间 (traceTime, MMDDhhmmss) instead, which the heal uses as
txnTime. A lost payment is healed once and never twice when the two agree to the second (as in this
emulator by default); when they differ, UnionPay answers "no such transaction" to that question and
the line stays a discrepancy: nothing is healed that UnionPay did not confirm (docs/reconciliation.md).
The bill's day and every transaction time are pinned, and so is the store's clock."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from paynotify_unionpay import UnionPayProvider
from paynotify_unionpay._emulator import MerchantCertificate, generate_merchant_certificate
from paynotify_unionpay.testing import SigningChain, UnionPayEmulator, generate_chain

from paynotify import BEIJING, BillFormatError, Notifier, Outcome, PaymentResult, VerificationError
from paynotify.reconciliation import ReconciliationReport
from paynotify.recovery import EmulatorTransport

DAY = date(2026, 11, 3)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=BEIJING)


class Clock:
    """The store's clock: DAY at noon while the shop records, the next morning while it reconciles."""

    def __init__(self) -> None:
        self.now = at(12).timestamp()

    def __call__(self) -> float:
        return self.now


@functools.cache
def chain() -> SigningChain:
    return generate_chain()


@functools.cache
def merchant() -> MerchantCertificate:
    return generate_merchant_certificate()


@dataclass
class Shop:
    notifier: Notifier
    emu: UnionPayEmulator
    delivered: list[PaymentResult]
    clock: Clock

    async def record(self, transaction: dict[str, str], *, refund: bool = False) -> None:
        """The shop hears of it (here by asking; a notification records the same event)."""
        order, when = transaction["orderId"], self.emu.txn_time(transaction)
        answer = await self.notifier.query("shop", order, refund_id=order if refund else None, at=when)
        assert answer.outcome is Outcome.DELIVERED

    async def reconcile(self, *, heal: bool = False) -> ReconciliationReport:
        self.clock.now = (at(11) + timedelta(days=1)).timestamp()  # healed events recorded then
        return await self.notifier.reconcile("shop", DAY, heal=heal)


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Shop:
    clock = Clock()
    monkeypatch.setattr("paynotify._stores.memory.now", clock)  # recorded on DAY, reconciled the next
    emu = UnionPayEmulator(chain=chain(), merchant=merchant())
    notifier = Notifier("memory://", api_transport=EmulatorTransport({"unionpay.emulator": emu}))
    notifier.add_account("shop", UnionPayProvider(), **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    return Shop(notifier, emu, delivered, clock)


def kinds(report: ReconciliationReport) -> list[tuple[str, int | None, str]]:
    return [(d.kind.value, d.line, d.order_id) for d in report.discrepancies]


async def test_every_discrepancy_kind_is_found(shop: Shop) -> None:
    emu = shop.emu
    async with shop.notifier:
        paid = [emu.pay(f"order2026110300{i}", txn_amt=f"{i}00", txn_time=at(9, i)) for i in range(1, 6)]
        unpaid = emu.pay("order20261103006", txn_amt="600", resp_code="05", txn_time=at(9, 6))
        refund = emu.refund("refund2026110301", "order20261103001", txn_amt="50", txn_time=at(10))
        for transaction in paid[:4]:
            await shop.record(transaction)
        await shop.record(refund, refund=True)
        await shop.record(unpaid)  # recorded pending (respCode 05); the bill lists it as settled
        faults = emu.bill_faults
        faults.amounts["order20261103002"] = "201"
        faults.listed_as_paid.add("order20261103006")
        faults.missing.add("order20261103004")
        faults.unrecorded.append(("ghost20261103", "999"))
        report = await shop.reconcile()
    assert report.provider == "unionpay"
    assert (report.lines, report.matched) == (7, 3)  # order …001, …003 and the refund
    assert report.counts == {"missing": 2, "unknown": 1, "amount_mismatch": 1, "state_mismatch": 1}
    # ZM lines in the ledger's order (…004 left out), the unrecorded one last; numbered from 1.
    assert kinds(report) == [
        ("amount_mismatch", 2, "order20261103002"),
        ("missing", 4, "order20261103005"),
        ("state_mismatch", 5, "order20261103006"),
        ("missing", 7, "ghost20261103"),
        ("unknown", None, "order20261103004"),
    ]
    by_order = {d.order_id: d for d in report.discrepancies}
    assert (by_order["order20261103002"].bill_amount, by_order["order20261103002"].recorded_amount) == (
        "2.01",
        "2.00",
    )
    assert (by_order["order20261103006"].bill_status, by_order["order20261103006"].recorded_status) == (
        "succeeded",
        "pending",
    )
    assert report.healed == 0


async def test_a_lost_payment_and_refund_are_healed_once_and_never_twice(shop: Shop) -> None:
    emu = shop.emu
    async with shop.notifier:
        one = emu.pay("order20261103001", txn_amt="100", txn_time=at(9))
        emu.pay("order20261103002", txn_amt="8888", txn_time=at(9, 30))
        emu.refund("refund2026110301", "order20261103001", txn_amt="30", txn_time=at(15))
        await shop.record(one)
        shop.delivered.clear()
        first = await shop.reconcile(heal=True)
        assert (first.counts["missing"], first.healed) == (2, 2)
        assert {(d.order_id, d.record_kind, d.healed) for d in first.discrepancies} == {
            ("order20261103002", "payment", "delivered"),
            ("refund2026110301", "refund", "delivered"),
        }
        assert sorted(
            (r.kind.value, r.order_id, str(r.refund_amount or r.amount)) for r in shop.delivered
        ) == [
            ("payment", "order20261103002", "88.88"),
            ("refund", "refund2026110301", "0.30"),
        ]
        second = await shop.reconcile(heal=True)
        third = await shop.reconcile(heal=True)
    assert len(shop.delivered) == 2  # nothing delivered twice
    assert (second.matched, second.counts["missing"], second.healed) == (3, 0, 0)
    assert second.same_as(third)
    assert second.open_counts() == dict.fromkeys(second.counts, 0)


async def test_a_transmission_time_other_than_txn_time_is_not_healed(shop: Shop) -> None:
    """UnionPay's 交易传输时间 three seconds after the merchant's txnTime: the query the bill allows
    names no transaction, so nothing is delivered and the line stays missing, for a person."""
    async with shop.notifier:
        lost = shop.emu.pay("order20261103002", txn_amt="8888", txn_time=at(9, 30))
        lost["traceTime"] = f"{at(9, 30) + timedelta(seconds=3):%m%d%H%M%S}"
        report = await shop.reconcile(heal=True)
    assert shop.delivered == []
    (item,) = report.discrepancies
    assert (item.kind.value, item.order_id, item.healed) == ("missing", "order20261103002", None)
    assert item.note == "not healed: the provider knows no such order"
    assert report.open_counts()["missing"] == 1


async def test_nothing_unionpay_does_not_confirm_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.emu.pay("order20261103001", txn_amt="500", txn_time=at(9))
        shop.emu.bill_faults.unrecorded.append(("ghost20261103", "999"))
        shop.emu.bill_faults.amounts["order20261103001"] = "5000"
        report = await shop.reconcile(heal=True)
    assert report.healed == 0
    # The query delivered what UnionPay's verified answer says (5.00), never the bill's 50.00.
    assert [(r.order_id, str(r.amount)) for r in shop.delivered] == [("order20261103001", "5.00")]
    notes = {d.order_id: (d.healed, d.note) for d in report.discrepancies}
    assert notes["ghost20261103"] == (None, "not healed: the provider knows no such order")
    assert notes["order20261103001"][0] is None
    assert "5.00" in notes["order20261103001"][1]


async def test_a_malformed_line_is_refused_by_its_number_and_nothing_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.emu.pay("order20261103001", txn_amt="100", txn_time=at(9))
        shop.emu.pay("order20261103002", txn_amt="200", txn_time=at(10))
        shop.emu.bill_faults.malformed[2] = b"S22 too short"
        with pytest.raises(BillFormatError, match="line 2") as caught:
            await shop.reconcile(heal=True)
    assert caught.value.line == 2
    assert shop.delivered == []


async def test_a_forged_or_altered_file_answer_is_refused_and_nothing_is_healed(shop: Shop) -> None:
    emu: Any = shop.emu
    async with shop.notifier:
        emu.pay("order20261103001", txn_amt="100", txn_time=at(9))
        emu.chain = generate_chain()  # signed by a chain the account does not trust
        with pytest.raises(VerificationError):
            await shop.reconcile(heal=True)
        emu.chain = chain()
        emu.tamper = lambda body: body.replace(b"fileContent=", b"fileContent=QUFB", 1)
        with pytest.raises(VerificationError):
            await shop.reconcile(heal=True)
    assert shop.delivered == []
