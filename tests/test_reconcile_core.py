"""`Notifier.reconcile` against a provider of the tests' own (tests/_ledger_provider.py: the same
contract a third party implements): every discrepancy kind, a lost payment healed once and never
twice, a malformed bill refused by its line with nothing healed, the download's cap and deadline."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from _ledger_provider import DAY, LedgerEmulator, LedgerProvider, PinnedClock, pin_store_clock
from _store_backends import BACKENDS, backend_stores

from paynotify import (
    ApiRequest,
    BillFormatError,
    Notifier,
    Outcome,
    PaymentResult,
    ProviderApiError,
    ProviderUnavailable,
)
from paynotify.reconciliation import (
    DiscrepancyKind,
    HttpDownload,
    ReconciliationInProgress,
    ReconciliationReport,
)
from paynotify.recovery import EmulatorTransport


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    """The shop records its events on DAY (the emulator pays on DAY), whatever today is."""
    return pin_store_clock(monkeypatch)


def setup(store: str = "memory://") -> tuple[Notifier, LedgerEmulator, list[PaymentResult]]:
    emu = LedgerEmulator()
    notifier = Notifier(store, api_transport=EmulatorTransport({emu.host: emu}))
    notifier.add_account("shop", LedgerProvider(), **emu.account_settings())
    delivered: list[PaymentResult] = []
    notifier.subscribe(delivered.append)
    return notifier, emu, delivered


async def record(notifier: Notifier, *orders: str) -> None:
    """The shop hears of these orders (here by asking; a notification records the same event)."""
    for order in orders:
        assert (await notifier.query("shop", order)).outcome is Outcome.DELIVERED


def kinds(report: ReconciliationReport) -> list[tuple[str, int | None, str]]:
    return [(d.kind.value, d.line, d.order_id) for d in report.discrepancies]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_discrepancy_kind_is_found(backend: str, tmp_path: Path) -> None:
    async with backend_stores(backend, tmp_path) as make:
        notifier, emu, _ = setup()
        notifier.store = make()
        async with notifier:
            for i in range(1, 6):
                emu.pay(f"o-{i}", f"{i}.00")
            emu.refund("o-1", "rf-1", "0.50")
            await record(notifier, "o-1", "o-2", "o-3", "o-4")
            assert (await notifier.query("shop", "o-1", refund_id="rf-1")).outcome is Outcome.DELIVERED
            # The bill: o-5 never recorded, o-2's amount and o-3's state differ, o-4 not on it.
            emu.bill_amounts["o-2"] = "2.01"
            emu.bill_statuses["o-3"] = "closed"
            emu.hidden.add("o-4")
            report = await notifier.reconcile("shop", DAY)
        assert (report.lines, report.matched) == (5, 2)  # o-1 and its refund
        assert report.counts == {"missing": 1, "unknown": 1, "amount_mismatch": 1, "state_mismatch": 1}
        assert kinds(report) == [
            ("amount_mismatch", 3, "o-2"),
            ("state_mismatch", 4, "o-3"),
            ("missing", 5, "o-5"),
            ("unknown", None, "o-4"),
        ]
        mismatch = report.discrepancies[0]
        assert (mismatch.bill_amount, mismatch.recorded_amount, mismatch.event_id is not None) == (
            "2.01",
            "2.00",
            True,
        )
        assert report.healed == 0
        assert report.discrepancies[2].healed is None


async def test_a_lost_payment_is_healed_once_and_never_twice() -> None:
    notifier, emu, delivered = setup()
    async with notifier:
        emu.pay("o-1", "1.00")
        emu.pay("o-2", "88.88")
        emu.refund("o-1", "rf-1", "0.30")
        await record(notifier, "o-1")
        delivered.clear()
        first = await notifier.reconcile("shop", DAY, heal=True)
        assert first.counts["missing"] == 2
        assert first.healed == 2
        assert {(d.order_id, d.healed) for d in first.discrepancies} == {
            ("o-2", "delivered"),
            ("o-1", "delivered"),
        }
        assert sorted((r.kind.value, r.order_id) for r in delivered) == [
            ("payment", "o-2"),
            ("refund", "o-1"),
        ]
        assert delivered[0].amount == Decimal("88.88") or delivered[1].amount == Decimal("88.88")
        second = await notifier.reconcile("shop", DAY, heal=True)
        third = await notifier.reconcile("shop", DAY, heal=True)
    assert len(delivered) == 2  # nothing delivered twice
    assert (second.matched, second.counts["missing"], second.healed) == (3, 0, 0)
    assert second.same_as(third)
    assert second.open_counts() == dict.fromkeys(second.counts, 0)


async def test_nothing_the_provider_does_not_confirm_is_healed() -> None:
    notifier, emu, _delivered = setup()
    async with notifier:
        emu.pay("o-1", "5.00")
        # The bill names a payment the provider's (signed) answers know nothing of.
        emu.extra_lines.append(f"payment,o-ghost,T999999,,,9.99,succeeded,{DAY} 13:00:00")
        # And one whose amount the provider's verified answer contradicts.
        emu.bill_amounts["o-1"] = "50.00"
        report = await notifier.reconcile("shop", DAY, heal=True)
    assert report.healed == 0
    notes = {d.order_id: (d.healed, d.note) for d in report.discrepancies}
    assert notes["o-ghost"] == (None, "not healed: the provider knows no such order")
    assert notes["o-1"][0] is None
    assert "5.00" in notes["o-1"][1]
    assert report.open_counts()["missing"] == 2


async def test_a_malformed_line_refuses_the_bill_by_its_number_and_heals_nothing() -> None:
    notifier, emu, delivered = setup()
    async with notifier:
        emu.pay("o-1", "1.00")
        emu.pay("o-2", "2.00")
        emu.extra_lines.append(f"payment,o-3,T3,,,not-money,succeeded,{DAY} 13:00:00")
        with pytest.raises(BillFormatError) as caught:
            await notifier.reconcile("shop", DAY, heal=True)
    assert caught.value.line == 4
    assert delivered == []


async def test_two_reconciliations_of_one_day_at_once_one_runs() -> None:
    notifier, emu, _ = setup()
    async with notifier:
        emu.pay("o-1", "1.00")
        emu.body_delay = 0.05
        emu.padding = 0
        results = await asyncio.gather(
            notifier.reconcile("shop", DAY), notifier.reconcile("shop", DAY), return_exceptions=True
        )
    assert sorted(type(r).__name__ for r in results) == ["ReconciliationInProgress", "ReconciliationReport"]
    assert any(isinstance(r, ReconciliationInProgress) for r in results)


async def test_the_download_is_capped_and_has_a_deadline_and_hides_its_token() -> None:
    emu = LedgerEmulator()
    emu.pay("o-1", "1.00")
    transport = EmulatorTransport({emu.host: emu})
    url = f"http://{emu.host}/file/{DAY}?token=sekrit-download-token"
    whole = HttpDownload(transport=transport)
    file = await whole(ApiRequest("GET", url))
    assert file.read() == emu.bill(str(DAY))
    file.close()
    emu.padding = 10_000
    with pytest.raises(ProviderApiError, match="larger than 4096 bytes") as too_big:
        await HttpDownload(transport=transport, max_bytes=4096)(ApiRequest("GET", url))
    assert not isinstance(too_big.value, ProviderUnavailable)
    emu.body_delay = 0.2
    with pytest.raises(ProviderUnavailable, match=r"within 0\.5 s") as slow:
        await HttpDownload(transport=transport, timeout=0.5)(ApiRequest("GET", url))
    assert "sekrit" not in str(too_big.value) + str(slow.value)
    with pytest.raises(ProviderUnavailable):
        await HttpDownload(transport=transport)(ApiRequest("GET", "http://nowhere.emulator/file"))
    with pytest.raises(ProviderApiError, match="HTTP 404"):
        await HttpDownload(transport=transport)(ApiRequest("GET", f"http://{emu.host}/nothing"))
    for download in (whole,):
        await download.aclose()


async def test_the_report_round_trips_through_json() -> None:
    notifier, emu, _ = setup()
    async with notifier:
        emu.pay("o-1", "1.00")
        report = await notifier.reconcile("shop", DAY)
    again = ReconciliationReport.from_json(report.to_json())
    assert again == report
    assert again.discrepancies[0].kind is DiscrepancyKind.MISSING


async def test_a_confirmed_line_whose_delivery_failed_is_not_healed() -> None:
    notifier, emu, _ = setup()

    def broken(result: PaymentResult) -> None:
        raise RuntimeError("the shop's database is down")

    notifier.subscribe(broken)
    async with notifier:
        emu.pay("o-1", "1.00")
        report = await notifier.reconcile("shop", DAY, heal=True)
    (item,) = report.discrepancies
    assert report.healed == 0
    assert item.healed is None
    assert item.note == "not healed: confirmed, but its delivery is delivery_failed"
