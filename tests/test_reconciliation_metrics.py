"""`paynotify_reconciliation_discrepancies{account,kind}` through `/metrics`: the discrepancies still
open in each account's latest stored report, one sample per kind, healed ones no longer counted."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from _ledger_provider import DAY, LedgerEmulator, LedgerProvider, PinnedClock, pin_store_clock
from _store_backends import backend_stores
from prometheus_client import CollectorRegistry

from paynotify import Notifier, Outcome
from paynotify.ops import Instrumentation, ops_app
from paynotify.recovery import EmulatorTransport


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    return pin_store_clock(monkeypatch)


def gauges(text: str) -> dict[tuple[str, str], float]:
    found = re.findall(r'^paynotify_reconciliation_discrepancies\{account="([^"]*)",kind="([^"]*)"\} (\S+)$',
                       text, re.MULTILINE)  # fmt: skip
    return {(account, kind): float(value) for account, kind, value in found}


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_the_gauge_is_each_accounts_latest_report_by_kind(backend: str, tmp_path: Path) -> None:
    async with backend_stores(backend, tmp_path) as make:
        shop, other = LedgerEmulator(), LedgerEmulator(host="other.emulator")
        n = Notifier(make(), api_transport=EmulatorTransport({shop.host: shop, other.host: other}))
        n.add_account("shop", LedgerProvider(), **shop.account_settings())
        n.add_account("app", LedgerProvider(), **other.account_settings())
        registry = CollectorRegistry()
        instrumentation = Instrumentation(registry=registry, tracing=False, state_cache_seconds=0)
        instrumentation.attach(n)
        app = ops_app(n, instrumentation=instrumentation)
        transport = httpx.ASGITransport(app=app)
        async with n, httpx.AsyncClient(transport=transport, base_url="http://ops") as ops:
            assert gauges((await ops.get("/metrics")).text) == {}  # nothing reconciled yet
            for i in range(1, 6):
                shop.pay(f"o-{i}", f"{i}.00")
            for order in ("o-2", "o-3", "o-4"):
                assert (await n.query("shop", order)).outcome is Outcome.DELIVERED
            shop.bill_amounts["o-2"] = "2.01"  # amount_mismatch
            shop.bill_statuses["o-3"] = "closed"  # state_mismatch
            shop.hidden.add("o-4")  # unknown; o-1 and o-5 missing
            other.pay("a-1", "9.00")
            await n.reconcile("shop", DAY)
            await n.reconcile("app", DAY)
            assert gauges((await ops.get("/metrics")).text) == {
                ("shop", "missing"): 2, ("shop", "unknown"): 1, ("shop", "amount_mismatch"): 1,
                ("shop", "state_mismatch"): 1,
                ("app", "missing"): 1, ("app", "unknown"): 0, ("app", "amount_mismatch"): 0,
                ("app", "state_mismatch"): 0,
            }  # fmt: skip
            # Healed: the lost payments are delivered, and no longer open.
            await n.reconcile("shop", DAY, heal=True)
            after = gauges((await ops.get("/metrics")).text)
            assert (after["shop", "missing"], after["shop", "unknown"], after["app", "missing"]) == (0, 1, 1)
            # An older day reconciled late is stored, but the gauge stays the latest day's.
            await n.reconcile("app", DAY - timedelta(days=1))
            assert gauges((await ops.get("/metrics")).text)["app", "missing"] == 1
            text = (await ops.get("/metrics")).text
        assert "o-1" not in text  # never an order id as a label
