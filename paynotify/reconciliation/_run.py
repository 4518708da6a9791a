"""`Notifier.reconcile`: fetch the account's bill of a Beijing day, match it against the recorded
events, and (with `heal`) ask the provider about each line that was never recorded.

The bill is only evidence: a line is never delivered. Healing is `Notifier.query`, which verifies
the provider's answer and delivers it through the pipeline once (its event id dedupes a second
run); a line whose verified answer does not state the same (found, same state and amount) stays a
discrepancy. A malformed bill raises `BillFormatError` before anything is healed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any

from paynotify import (
    BEIJING,
    BillLine,
    ConfigurationError,
    Kind,
    Outcome,
    PaynotifyError,
    ProviderApiError,
    ReconciliationStore,
    StoredReport,
    StoreError,
    UnknownAccount,
    VerificationError,
)
from paynotify.reconciliation._download import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, HttpDownload
from paynotify.reconciliation._match import Matcher
from paynotify.reconciliation._report import Discrepancy, DiscrepancyKind, ReconciliationReport
from paynotify.recovery import HttpSend

if TYPE_CHECKING:
    from paynotify import Notifier

__all__ = ["LEASE_SECONDS", "WINDOW_SECONDS", "ReconciliationInProgress", "reconcile", "stored"]

WINDOW_SECONDS = 1800.0
"""Events recorded up to this long before or after the Beijing day are read with it: a payment
made at 23:59 is often notified (recorded) after midnight, and its bill is the day it was paid."""
LEASE_SECONDS = 900.0
"""How long a reconciliation holds its (account, day) lease in the store unless it ends sooner: past
it (its process died), another instance may take the day over."""
_PAGE = 1000
_BATCH = 5000
_CONFIRMING = frozenset({Outcome.DELIVERED, Outcome.QUEUED, Outcome.DUPLICATE})
_running: weakref.WeakKeyDictionary[Any, set[tuple[str, str]]] = weakref.WeakKeyDictionary()


class ReconciliationInProgress(PaynotifyError):
    """That account's day is being reconciled already (by this process, or by another instance
    holding its lease in the store)."""


def reports_of(notifier: Notifier) -> ReconciliationStore | None:
    """The store's reports and leases, or None for a store that keeps none (a store of one's own)."""
    try:
        return notifier.store.reconciliations
    except NotImplementedError:
        return None


def stored(report: ReconciliationReport, *, heal: bool) -> StoredReport:
    """What the store keeps of `report`."""
    return StoredReport(
        account=report.account, day=report.day, provider=report.provider, run_at=report.run_at, heal=heal,
        healed=report.healed, counts=dict(report.counts), report_json=report.to_json(),
    )  # fmt: skip


async def reconcile(
    notifier: Notifier,
    account_name: str,
    day: date,
    *,
    heal: bool = False,
    window: float = WINDOW_SECONDS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    download_timeout: float = DEFAULT_TIMEOUT,
    listed_limit: int = 10_000,
    lease_seconds: float = LEASE_SECONDS,
) -> ReconciliationReport:
    """Reconcile the account's day under its lease, and store the report (replacing the day's
    earlier one)."""
    account = notifier.accounts.get(account_name)
    if account is None:
        raise UnknownAccount(
            f"no account {account_name!r} (configured: {', '.join(sorted(notifier.accounts)) or 'none'})"
        )
    api = account.provider.api()
    if api is None or not api.can_fetch_bills(account):
        raise ConfigurationError(f"account {account_name!r} cannot fetch bills from {account.provider.name}")
    running = _running.setdefault(notifier, set())
    key = (account_name, day.isoformat())
    if key in running:
        raise ReconciliationInProgress(f"account {account_name!r}, {day}: being reconciled already")
    running.add(key)
    store = reports_of(notifier)
    token = None
    try:
        if store is not None:
            token = await store.take_lease(account_name, day, seconds=lease_seconds)
            if token is None:
                raise ReconciliationInProgress(
                    f"account {account_name!r}, {day}: being reconciled by another instance (its lease)"
                )
        send = notifier.api_send
        download = HttpDownload(
            send.client if isinstance(send, HttpSend) else None, max_bytes=max_bytes, timeout=download_timeout
        )
        matcher = Matcher(day, listed_limit=listed_limit)
        await _load_day(notifier, account_name, day, window, matcher)
        bill = await api.fetch_bill(send, download, account, day)
        try:
            lines = bill.lines()
            while await asyncio.to_thread(matcher.step, lines, _BATCH) == _BATCH:
                pass
        finally:
            bill.close()
        missing = await _look_up_late(notifier, account_name, matcher)
        matcher.unknown()
        healed = await _heal(notifier, account_name, matcher, missing) if heal else 0
        report = ReconciliationReport(
            account=account_name, provider=account.provider.name, day=day.isoformat(), run_at=time.time(),
            lines=matcher.lines, matched=matcher.matched, counts=dict(matcher.counts),
            discrepancies=tuple(sorted(matcher.discrepancies, key=_order)), healed=healed,
            truncated=matcher.truncated,
        )  # fmt: skip
        if store is not None:
            await store.save_report(stored(report, heal=heal))
        return report
    finally:
        running.discard(key)
        if store is not None and token is not None:
            with contextlib.suppress(StoreError):  # it runs out by itself
                await store.release_lease(account_name, day, token)


def _order(item: Discrepancy) -> tuple[int, str, str]:
    return (item.line if item.line is not None else 1 << 62, item.kind.value, item.event_id or "")


async def _load_day(notifier: Notifier, account: str, day: date, window: float, matcher: Matcher) -> None:
    start = datetime.combine(day, clock_time(), BEIJING).timestamp() - window
    end = datetime.combine(day + timedelta(days=1), clock_time(), BEIJING).timestamp() + window
    before: float | None = end
    after_id: str | None = None
    while True:
        page = await notifier.store.find(account=account, created_after=start, created_before=before,
                                         before_event_id=after_id, limit=_PAGE)  # fmt: skip
        for event in page:
            matcher.add(event)
        if len(page) < _PAGE:
            return
        before, after_id = page[-1].created_at, page[-1].event_id


async def _look_up_late(notifier: Notifier, account: str, matcher: Matcher) -> list[BillLine]:
    """The lines the day's events did not match, looked up by order id (recorded late, or early)."""
    missing = []
    for line in matcher.unresolved:
        late = Matcher(matcher.day)
        for event in await notifier.store.find(account=account, order_id=line.order_id, limit=100):
            late.add(event)
        record = late.find(line)
        if record is None:
            missing.append(line)
            matcher.note(DiscrepancyKind.MISSING, line, note="on the bill, never recorded")
        else:
            matcher.compare(line, record)
    matcher.unresolved = []
    return missing


async def _heal(notifier: Notifier, account: str, matcher: Matcher, missing: list[BillLine]) -> int:
    healed = 0
    by_line = {d.line: i for i, d in enumerate(matcher.discrepancies) if d.kind is DiscrepancyKind.MISSING}
    for line in missing:
        outcome, note, event_id = await _ask(notifier, account, line)
        index = by_line.get(line.line)
        if outcome is not None:
            healed += 1
        if index is not None:
            old = matcher.discrepancies[index]
            fields = {**_fields(old), "healed": outcome, "note": note, "event_id": event_id}
            matcher.discrepancies[index] = Discrepancy(**fields)
    return healed


def _fields(item: Discrepancy) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}


async def _ask(notifier: Notifier, account: str, line: BillLine) -> tuple[str | None, str, str | None]:
    """The query's outcome when the provider's verified answer confirms the line, else None; why;
    the answer's event id."""
    if line.kind is Kind.REFUND and not line.refund_id:
        return None, "not healed: the bill gives no merchant refund id to ask about", None
    refund_id = line.refund_id if line.kind is Kind.REFUND else None
    try:
        answer = await notifier.query(account, line.order_id, refund_id=refund_id, at=line.at)
    except (VerificationError, ProviderApiError) as exc:
        return None, f"not healed: the query failed ({type(exc).__name__}: {exc})", None
    result = answer.result
    if result is None:
        return None, "not healed: the provider knows no such order", None
    amount = result.refund_amount if line.kind is Kind.REFUND else result.amount
    if result.kind is not line.kind or result.status is not line.status or amount != line.amount:
        said = f"{result.kind.value} {result.status.value} {amount}"
        return None, f"not healed: the provider says {said}", result.event_id
    if answer.outcome not in _CONFIRMING:
        return None, f"not healed: confirmed, but its delivery is {answer.outcome}", result.event_id
    return str(answer.outcome), "healed: confirmed by the provider's verified answer", result.event_id
