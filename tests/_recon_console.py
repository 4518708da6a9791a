"""A shop with stored reconciliation reports, for the console's reconciliation pages (over HTTP and
in Chromium): DAY with every kind of discrepancy (and an order id that tries to inject markup), the
day before without any; the ledger provider's emulator, the memory store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from _ledger_provider import DAY, LedgerEmulator, LedgerProvider

from paynotify import Notifier, Outcome
from paynotify.reconciliation import ReconciliationReport
from paynotify.recovery import EmulatorTransport

INJECTED = "<img src=x onerror=alert(1)>"
"""An order id on the bill only (a missing line), shown on the report's page, escaped."""
BEFORE = DAY - timedelta(days=1)


@dataclass
class Reconciled:
    notifier: Notifier
    emulator: LedgerEmulator
    reports: dict[str, ReconciliationReport] = field(default_factory=dict)
    """Day (ISO) -> the report stored for it."""


async def reconciled() -> Reconciled:
    """Call with the stores' clock pinned on DAY (`pin_store_clock`)."""
    emu = LedgerEmulator()
    notifier = Notifier("memory://", api_transport=EmulatorTransport({emu.host: emu}))
    notifier.add_account("shop", LedgerProvider(), **emu.account_settings())
    made = Reconciled(notifier, emu)
    async with notifier:  # the memory store outlives its opening: the console reads it later
        for i in range(1, 6):
            emu.pay(f"o-{i}", f"{i}.00")
        for order in ("o-1", "o-2", "o-3", "o-4"):
            assert (await notifier.query("shop", order)).outcome is Outcome.DELIVERED
        emu.bill_amounts["o-2"] = "2.01"
        emu.bill_statuses["o-3"] = "closed"
        emu.hidden.add("o-4")
        emu.extra_lines.append(f"payment,{INJECTED},T999999,,,9.99,succeeded,{DAY} 13:00:00")
        made.reports[DAY.isoformat()] = await notifier.reconcile("shop", DAY)
        emu.extra_lines.clear()  # the day before: nothing on its bill, nothing recorded on it
        made.reports[BEFORE.isoformat()] = await notifier.reconcile("shop", BEFORE)
    return made
