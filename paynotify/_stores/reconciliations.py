"""Reconciliation reports and leases, in the same store as the events (`Store.reconciliations`).

One report per (account, Beijing day): saving one replaces the day's earlier one, so running a
day twice leaves one report, the last. The core keeps a report as its JSON text (written and read
by `paynotify.reconciliation`) with the few fields the console and the metrics read: its counts,
how many were healed, when it ran and whether it was asked to heal.

A lease per (account, day) keeps two instances from reconciling the same day at once: `take_lease`
gives a token, or None while another holder's lease is live; a lease that runs out (its process
died) is taken over; `release_lease` with the token ends it early.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

__all__ = [
    "COLUMNS",
    "SUMMARY_COLUMNS",
    "MemoryReconciliations",
    "ReconciliationStore",
    "StoredReport",
    "check_key",
    "check_report",
    "day_text",
]

_MISSING = "missing"


@dataclass(frozen=True, slots=True)
class StoredReport:
    account: str
    day: str
    """The Beijing day, ISO (2026-01-31)."""
    provider: str
    run_at: float
    """When the reconciliation ran (Unix seconds)."""
    heal: bool
    """Whether it was asked to heal (query and deliver the missing lines)."""
    healed: int
    counts: dict[str, int] = field(default_factory=dict)
    """Discrepancies by kind (complete, even when the report lists fewer)."""
    report_json: str = "{}"
    """The whole report (`ReconciliationReport.to_json()`)."""

    @property
    def open_counts(self) -> dict[str, int]:
        """Discrepancies by kind still open: a healed missing line is not."""
        counts = dict(self.counts)
        if _MISSING in counts:
            counts[_MISSING] = max(0, counts[_MISSING] - self.healed)
        return counts

    @property
    def key(self) -> tuple[str, str]:
        return (self.account, self.day)

    def summary(self) -> StoredReport:
        """Itself without the report's JSON (what listings return)."""
        return dataclasses.replace(self, report_json="")

    def columns(self) -> tuple[object, ...]:
        """The SQL backends' values, in COLUMNS order."""
        return (self.account, self.day, self.provider, self.run_at, int(self.heal), self.healed,
                json.dumps(self.counts, sort_keys=True), self.report_json)  # fmt: skip


COLUMNS = "account, day, provider, run_at, heal, healed, counts_json, report_json"
"""The SQL backends' report columns, in `from_row`'s order."""
SUMMARY_COLUMNS = COLUMNS.replace("report_json", "'' AS report_json")
"""The same, for a listing: every field but the report's JSON (it may be megabytes)."""


def from_row(row: Iterable[object]) -> StoredReport:
    account, day, provider, run_at, heal, healed, counts_json, report_json = row
    return StoredReport(
        account=str(account), day=str(day), provider=str(provider), run_at=float(run_at),  # type: ignore[arg-type]
        heal=bool(heal), healed=int(healed), counts=json.loads(str(counts_json)),  # type: ignore[call-overload]
        report_json=str(report_json),
    )  # fmt: skip


def day_text(day: date | str) -> str:
    """A day as ISO text, checked (a key and an SQL parameter)."""
    return day.isoformat() if isinstance(day, date) else date.fromisoformat(day).isoformat()


def check_key(account: str) -> None:
    if "\x00" in account or not account.strip():
        raise ValueError("a reconciliation's account must be non-empty, without NUL")


def check_report(report: StoredReport) -> None:
    """Its account and day go into keys and SQL parameters (checked here once for every backend)."""
    check_key(report.account)
    try:
        valid = day_text(report.day) == report.day
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"a report's day must be ISO text (2026-01-31), not {report.day!r}")


class ReconciliationStore(ABC):
    """The reports and leases of one store. Times are Unix seconds; `now` defaults to the clock."""

    @abstractmethod
    async def save_report(self, report: StoredReport) -> None:
        """Store `report`, replacing the one of its (account, day) if there is one."""

    @abstractmethod
    async def report(self, account: str, day: date | str) -> StoredReport | None:
        """The report of that account's day, or None."""

    @abstractmethod
    async def reports(
        self, *, account: str | None = None, since: date | str | None = None, limit: int = 100
    ) -> list[StoredReport]:
        """Reports newest day first (one day's in account order), of days from `since` on, at most
        `limit`; as summaries (`report_json` empty: `report` reads one whole)."""

    @abstractmethod
    async def latest_reports(self) -> list[StoredReport]:
        """Each account's report of its latest reconciled day (the metrics), in account order; as
        summaries (`report_json` empty)."""

    @abstractmethod
    async def take_lease(
        self, account: str, day: date | str, *, seconds: float, now: float | None = None
    ) -> str | None:
        """Lease that account's day for `seconds`: a token, or None while another lease is live."""

    @abstractmethod
    async def release_lease(self, account: str, day: date | str, token: str) -> bool:
        """End the lease `token` holds; False (nothing changed) if it is not the holder's."""


class MemoryReconciliations(ReconciliationStore):
    """The memory store's: dicts, one process."""

    def __init__(self) -> None:
        self._reports: dict[tuple[str, str], StoredReport] = {}
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}

    async def save_report(self, report: StoredReport) -> None:
        check_report(report)
        self._reports[report.key] = report

    async def report(self, account: str, day: date | str) -> StoredReport | None:
        return self._reports.get((account, day_text(day)))

    async def reports(
        self, *, account: str | None = None, since: date | str | None = None, limit: int = 100
    ) -> list[StoredReport]:
        start = day_text(since) if since is not None else ""
        chosen = [
            r for r in self._reports.values() if (account is None or r.account == account) and r.day >= start
        ]
        chosen.sort(key=lambda r: r.account)
        chosen.sort(key=lambda r: r.day, reverse=True)
        return [r.summary() for r in chosen[:limit]]

    async def latest_reports(self) -> list[StoredReport]:
        latest: dict[str, StoredReport] = {}
        for record in self._reports.values():
            held = latest.get(record.account)
            if held is None or record.day > held.day:
                latest[record.account] = record
        return [latest[name].summary() for name in sorted(latest)]

    async def take_lease(
        self, account: str, day: date | str, *, seconds: float, now: float | None = None
    ) -> str | None:
        check_key(account)
        t = _now() if now is None else now
        key = (account, day_text(day))
        held = self._leases.get(key)
        if held is not None and held[1] > t:
            return None
        token = new_token()
        self._leases[key] = (token, t + seconds)
        return token

    async def release_lease(self, account: str, day: date | str, token: str) -> bool:
        key = (account, day_text(day))
        held = self._leases.get(key)
        if held is None or held[0] != token:
            return False
        del self._leases[key]
        return True
