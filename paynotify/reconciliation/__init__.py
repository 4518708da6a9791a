"""Reconciliation with the provider's daily bills (对账单): `Notifier.reconcile`.

    report = await notifier.reconcile("shop", date(2026, 1, 31), heal=True)
    report.counts["missing"], [d.line for d in report.discrepancies]

Above the pipeline, on the public names only; `Notifier` imports it when first asked.
"""

from paynotify.reconciliation._download import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, HttpDownload
from paynotify.reconciliation._match import Matcher
from paynotify.reconciliation._report import Discrepancy, DiscrepancyKind, ReconciliationReport
from paynotify.reconciliation._run import LEASE_SECONDS, WINDOW_SECONDS, ReconciliationInProgress, reconcile
from paynotify.reconciliation._schedule import DEFAULT_AFTER, DailyReconciliation, notifier_daily

__all__ = [
    "DEFAULT_AFTER",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "LEASE_SECONDS",
    "WINDOW_SECONDS",
    "DailyReconciliation",
    "Discrepancy",
    "DiscrepancyKind",
    "HttpDownload",
    "Matcher",
    "ReconciliationInProgress",
    "ReconciliationReport",
    "notifier_daily",
    "reconcile",
]
