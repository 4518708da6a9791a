"""`Notifier.reconcile` over the WeChat Pay emulators (v2 and v3): every discrepancy kind found from
the emulator's bill, a lost payment and refund healed once (verified queries) and never twice,
nothing healed that the provider does not confirm, a malformed or forged bill refused before
anything is healed. The bill's day is pinned, and so is every clock (the emulator's, the
provider's and the store's)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from paynotify_wechatpay import WeChatPayV2Provider, WeChatPayV3Provider
from paynotify_wechatpay.testing import (
    V3SigningKey,
    WeChatPayV2Emulator,
    WeChatPayV3Emulator,
    generate_apiv3_key,
    generate_v3_platform_certificate,
)

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
def v3_keys() -> tuple[V3SigningKey, rsa.RSAPrivateKey, str]:
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return generate_v3_platform_certificate(), merchant, generate_apiv3_key()


@dataclass
class Shop:
    """A notifier with one WeChat Pay account on an emulator, and the ledger verbs of either API."""

    notifier: Notifier
    emu: Any
    clock: Clock
    delivered: list[PaymentResult]
    version: str

    def pay(self, order: str, fen: int, state: str = "SUCCESS") -> None:
        if self.version == "v3":
            self.emu.pay(order, total=fen, trade_state=state)
        else:
            self.emu.pay(order, total_fee=fen, trade_state=state)

    def refund(self, refund: str, order: str, fen: int) -> None:
        if self.version == "v3":
            self.emu.refund(refund, order, refund=fen)
        else:
            self.emu.refund(refund, order, refund_fee=fen)

    async def record(self, order: str, refund: str | None = None) -> None:
        """The shop hears of it (here by asking; a notification records the same event)."""
        answer = await self.notifier.query("shop", order, refund_id=refund)
        assert answer.outcome is Outcome.DELIVERED

    async def reconcile(self, *, heal: bool = False) -> ReconciliationReport:
        self.clock.set(at(NEXT, 11))  # the bill is published
        return await self.notifier.reconcile("shop", DAY, heal=heal)


@pytest.fixture(params=["v2", "v3"])
def shop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Shop:
    clock = Clock()
    monkeypatch.setattr("paynotify._stores.memory.now", clock)  # events recorded on the pinned day
    provider: Any
    if request.param == "v3":
        platform, merchant, apiv3 = v3_keys()
        emu: Any = WeChatPayV3Emulator(
            signing_key=platform, merchant_key=merchant, apiv3_key=apiv3, clock=clock
        )
        provider, host = WeChatPayV3Provider(clock=clock), "wechatpay-v3.emulator"
    else:
        emu = WeChatPayV2Emulator(sign_type="HMAC-SHA256", clock=clock)
        provider, host = WeChatPayV2Provider(), "wechatpay-v2.emulator"
    notifier = Notifier("memory://", api_transport=EmulatorTransport({host: emu}))
    notifier.add_account("shop", provider, **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    return Shop(notifier, emu, clock, delivered, request.param)


def kinds(report: ReconciliationReport) -> list[tuple[str, int | None, str]]:
    return [(d.kind.value, d.line, d.order_id) for d in report.discrepancies]


async def test_every_discrepancy_kind_is_found(shop: Shop) -> None:
    async with shop.notifier:
        for i in range(1, 6):
            shop.pay(f"o-{i}", 100 * i)
        shop.pay("o-6", 600, state="NOTPAY")
        shop.clock.set(at(DAY, 10))
        shop.refund("rf-1", "o-1", 50)
        for order in ("o-1", "o-2", "o-4"):
            await shop.record(order)
        await shop.record("o-1", "rf-1")
        # The shop saw o-6 unpaid (pending); the bill lists it as paid; o-5 was never recorded.
        assert (await shop.notifier.query("shop", "o-6")).outcome is Outcome.DELIVERED
        await shop.record("o-3")
        faults = shop.emu.bill_faults
        faults.amounts["o-2"] = "2.01"
        faults.listed_as_paid.add("o-6")
        faults.missing.add("o-4")
        faults.unrecorded.append(("o-ghost", "9.99"))
        report = await shop.reconcile()
    assert report.provider == f"wechatpay-{shop.version}"
    assert (report.lines, report.matched) == (7, 3)  # o-1, o-3 and rf-1
    assert report.counts == {"missing": 2, "unknown": 1, "amount_mismatch": 1, "state_mismatch": 1}
    assert kinds(report) == [
        ("amount_mismatch", 3, "o-2"),
        ("missing", 5, "o-5"),
        ("state_mismatch", 6, "o-6"),
        ("missing", 8, "o-ghost"),
        ("unknown", None, "o-4"),
    ]
    mismatch = report.discrepancies[0]
    assert (mismatch.bill_amount, mismatch.recorded_amount) == ("2.01", "2.00")
    assert (report.discrepancies[2].bill_status, report.discrepancies[2].recorded_status) == (
        "succeeded",
        "pending",
    )
    assert report.healed == 0


async def test_a_lost_payment_and_refund_are_healed_once_and_never_twice(shop: Shop) -> None:
    async with shop.notifier:
        shop.pay("o-1", 100)
        shop.pay("o-2", 8888)
        shop.clock.set(at(DAY, 15))
        shop.refund("rf-1", "o-1", 30)
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


async def test_nothing_the_provider_does_not_confirm_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.pay("o-1", 500)
        shop.emu.bill_faults.unrecorded.append(("o-ghost", "9.99"))
        shop.emu.bill_faults.amounts["o-1"] = "50.00"
        report = await shop.reconcile(heal=True)
    assert report.healed == 0
    # The query delivered what the provider's verified answer says (o-1 paid 5.00), never the bill's.
    assert [(r.order_id, str(r.amount)) for r in shop.delivered] == [("o-1", "5.00")]
    notes = {d.order_id: (d.healed, d.note) for d in report.discrepancies}
    assert notes["o-ghost"] == (None, "not healed: the provider knows no such order")
    assert notes["o-1"][0] is None
    assert "5.00" in notes["o-1"][1]


async def test_a_malformed_bill_is_refused_by_its_line_and_nothing_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.pay("o-1", 100)
        shop.pay("o-2", 200)
        shop.emu.bill_faults.malformed[3] = "`2026-11-03 09:00:00,`broken"
        with pytest.raises(BillFormatError) as caught:
            await shop.reconcile(heal=True)
    assert caught.value.line == 3
    assert shop.delivered == []


@pytest.mark.parametrize("shop", ["v3"], indirect=True)  # v2 bills carry no hash
async def test_a_v3_bill_whose_hash_does_not_match_is_refused_and_nothing_is_healed(shop: Shop) -> None:
    async with shop.notifier:
        shop.pay("o-1", 100)
        shop.emu.bill_faults.wrong_hash = True
        with pytest.raises(VerificationError, match="SHA1"):
            await shop.reconcile(heal=True)
    assert shop.delivered == []
