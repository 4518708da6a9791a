"""The reconciliation reports' and leases' contract, on every store: one report per (account, day),
replaced by a later run; newest day first; one lease per (account, day) across instances, taken over
once it runs out. Then through `Notifier.reconcile`: a day run twice leaves one stored report, the
same findings; two notifiers on one store do not reconcile one day at once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from _ledger_provider import DAY, LedgerEmulator, LedgerProvider, PinnedClock, pin_store_clock
from _store_backends import BACKENDS, backend_stores

from paynotify import (
    MemoryStore,
    Notifier,
    Outcome,
    ReconciliationStore,
    SQLiteStore,
    Store,
    StoredReport,
)
from paynotify.reconciliation import ReconciliationInProgress, ReconciliationReport
from paynotify.recovery import EmulatorTransport

T0 = 1_800_000_000.0


def report(account: str, day: str, *, missing: int = 0, healed: int = 0, run_at: float = T0) -> StoredReport:
    counts = {"missing": missing, "unknown": 0, "amount_mismatch": 1, "state_mismatch": 0}
    text = f'{{"day": "{day}", "run": {run_at}}}'
    return StoredReport(account=account, day=day, provider="test-ledger", run_at=run_at, heal=healed > 0,
                        healed=healed, counts=counts, report_json=text)  # fmt: skip


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    return pin_store_clock(monkeypatch)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_one_report_per_account_and_day_the_last_one_kept(backend: str, tmp_path: Path) -> None:
    async with backend_stores(backend, tmp_path) as make:
        store, other = make().reconciliations, make().reconciliations
        await store.save_report(report("shop", "2026-03-13", missing=2))
        await store.save_report(report("shop", "2026-03-14", missing=3))
        await store.save_report(report("app", "2026-03-14"))
        await store.save_report(report("app", "2026-03-12"))
        again = report("shop", "2026-03-14", missing=3, healed=3, run_at=T0 + 60)
        await other.save_report(again)  # another instance, the same day: replaced, not added
        assert await store.report("shop", "2026-03-14") == again
        assert await store.report("shop", DAY) == again  # a date or its ISO text
        assert await store.report("shop", "2026-03-11") is None
        assert again.open_counts == {"missing": 0, "unknown": 0, "amount_mismatch": 1, "state_mismatch": 0}
        listed = [(r.account, r.day) for r in await store.reports()]
        assert listed == [("app", "2026-03-14"), ("shop", "2026-03-14"), ("shop", "2026-03-13"),
                          ("app", "2026-03-12")]  # fmt: skip
        assert [r.day for r in await store.reports(account="shop")] == ["2026-03-14", "2026-03-13"]
        assert [(r.account, r.day) for r in await store.reports(since="2026-03-13", limit=2)] == [
            ("app", "2026-03-14"),
            ("shop", "2026-03-14"),
        ]
        assert [r.day for r in await store.reports(since="2026-03-13")] == ["2026-03-14"] * 2 + ["2026-03-13"]
        assert await store.reports(account="nobody") == []
        latest = await store.latest_reports()
        assert [(r.account, r.day, r.heal, r.run_at) for r in latest] == [
            ("app", "2026-03-14", False, T0),
            ("shop", "2026-03-14", True, T0 + 60),
        ]
        assert {r.report_json for r in [*latest, *await store.reports()]} == {""}  # summaries
        await store.save_report(report("app", "2026-03-10"))  # an older day run late: not the latest
        assert [r.day for r in await other.latest_reports()] == ["2026-03-14", "2026-03-14"]
        with pytest.raises(ValueError, match="ISO"):
            await store.save_report(report("shop", "31/01/2026"))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_one_lease_per_account_and_day_across_instances(backend: str, tmp_path: Path) -> None:
    async with backend_stores(backend, tmp_path) as make:
        one, two = make().reconciliations, make().reconciliations
        token = await one.take_lease("shop", DAY, seconds=60, now=T0)
        assert token is not None
        assert await two.take_lease("shop", DAY, seconds=60, now=T0 + 59) is None
        assert await two.take_lease("shop", "2026-03-15", seconds=60, now=T0) is not None  # another day
        assert await two.take_lease("app", DAY, seconds=60, now=T0) is not None  # another account
        assert not await two.release_lease("shop", DAY, "not-the-token")
        # Run out (its process died): taken over, and the old holder's release changes nothing.
        taken = await two.take_lease("shop", DAY, seconds=60, now=T0 + 60.5)
        assert taken is not None
        assert taken != token
        assert not await one.release_lease("shop", DAY, token)
        assert await one.take_lease("shop", DAY, seconds=60, now=T0 + 61) is None
        assert await two.release_lease("shop", DAY, taken)
        assert await one.take_lease("shop", DAY, seconds=60, now=T0 + 62) is not None


def shop(store: Store | str, emu: LedgerEmulator | None = None) -> tuple[Notifier, LedgerEmulator]:
    emu = emu or LedgerEmulator()
    notifier = Notifier(store, api_transport=EmulatorTransport({emu.host: emu}))
    notifier.add_account("shop", LedgerProvider(), **emu.account_settings())
    return notifier, emu


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_day_reconciled_twice_leaves_one_report_with_the_same_findings(
    backend: str, tmp_path: Path
) -> None:
    async with backend_stores(backend, tmp_path) as make:
        notifier, emu = shop(make())
        async with notifier:
            emu.pay("o-1", "1.00")
            emu.pay("o-2", "2.00")
            emu.bill_amounts["o-1"] = "1.50"
            assert (await notifier.query("shop", "o-1")).outcome is Outcome.DELIVERED
            first = await notifier.reconcile("shop", DAY)
            kept = await notifier.store.reconciliations.report("shop", DAY)
            assert kept is not None
            assert (kept.heal, kept.healed, kept.counts["missing"]) == (False, 0, 1)
            assert kept.run_at == first.run_at
            assert ReconciliationReport.from_json(kept.report_json) == first
            healed = await notifier.reconcile("shop", DAY, heal=True)
            again = await notifier.reconcile("shop", DAY, heal=True)
            stored = await notifier.store.reconciliations.reports(account="shop")
        assert healed.healed == 1
        assert len(stored) == 1
        (only,) = stored
        assert (only.heal, only.healed, only.open_counts["missing"]) == (True, 0, 0)
        assert only.report_json == ""  # a listing's summary; the whole report is read by its key
        whole = await notifier.store.reconciliations.report("shop", DAY)
        assert whole is not None
        assert ReconciliationReport.from_json(whole.report_json) == again
        assert again.counts == {"missing": 0, "unknown": 0, "amount_mismatch": 1, "state_mismatch": 0}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_notifiers_on_one_store_do_not_reconcile_one_day_at_once(
    backend: str, tmp_path: Path
) -> None:
    async with backend_stores(backend, tmp_path) as make:
        first, emu = shop(make())
        second, _ = shop(make(), emu)
        async with first, second:
            emu.pay("o-1", "1.00")
            # The second instance is reconciling the day (it holds the lease): the first is refused.
            leases = second.store.reconciliations
            token = await leases.take_lease("shop", DAY, seconds=300)
            assert token is not None
            with pytest.raises(ReconciliationInProgress, match="another instance"):
                await first.reconcile("shop", DAY)
            assert await first.store.reconciliations.report("shop", DAY) is None
            assert await leases.release_lease("shop", DAY, token)
            done = await first.reconcile("shop", DAY)
            assert done.counts["missing"] == 1
            # The lease ended with the run: the second instance may run the day again at once.
            assert (await second.reconcile("shop", DAY)).same_as(done)
            # A holder that died: its lease runs out, and the day is taken over.
            stale = await leases.take_lease("shop", DAY, seconds=60, now=time.time() - 120)
            assert stale is not None
            assert (await first.reconcile("shop", DAY)).same_as(done)


class StoreWithoutReports(MemoryStore):
    """A store of one's own that keeps no reports (the base class's default)."""

    @property
    def reconciliations(self) -> ReconciliationStore:
        raise NotImplementedError("no reports here")


async def test_a_store_without_reports_still_reconciles() -> None:
    notifier, emu = shop(StoreWithoutReports())
    async with notifier:
        emu.pay("o-1", "1.00")
        assert (await notifier.reconcile("shop", DAY)).counts["missing"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_notifiers_reconciling_one_day_at_the_same_moment_run_it_once(
    backend: str, tmp_path: Path
) -> None:
    async with backend_stores(backend, tmp_path) as make:
        first, emu = shop(make())
        second, _ = shop(make(), emu)
        async with first, second:
            emu.pay("o-1", "1.00")
            emu.body_delay = 0.5  # the bill comes slowly: the first holds the lease meanwhile
            emu.padding = 0
            results = await asyncio.gather(
                first.reconcile("shop", DAY), second.reconcile("shop", DAY), return_exceptions=True
            )
            stored = await first.store.reconciliations.reports()
        assert sorted(type(r).__name__ for r in results) == [
            "ReconciliationInProgress",
            "ReconciliationReport",
        ]
        assert emu.requests.count("/bill") == 1
        assert len(stored) == 1


async def test_a_version_3_sqlite_file_gains_the_reports_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    notifier, emu = shop(f"sqlite:///{path}")
    async with notifier:
        emu.pay("o-1", "1.00")
        assert (await notifier.query("shop", "o-1")).outcome is Outcome.DELIVERED
    with sqlite3.connect(path) as conn:  # as paynotify before reports wrote it
        conn.execute("DROP TABLE paynotify_reconciliations")
        conn.execute("DROP TABLE paynotify_reconciliation_leases")
        conn.execute("PRAGMA user_version = 3")
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        assert len(await store.find(account="shop")) == 1
        await store.reconciliations.save_report(report("shop", "2026-03-14"))
        assert await store.reconciliations.report("shop", "2026-03-14") is not None
        assert await store.reconciliations.take_lease("shop", DAY, seconds=60) is not None
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
