"""Matching a bill's lines against the account's recorded events of that day.

Memory is bounded by the day's recorded events, not by the bill: each event becomes one small
tuple, reachable under two keys (payments: provider transaction id, then order id; refunds:
provider refund id, then merchant refund id); the bill is streamed past it. Lines not found in the
day's events are kept (they are the discrepancies, and are looked up one by one by order id, so a
payment recorded days late still matches).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from paynotify import BEIJING, BillLine, EventState, Kind, StoredEvent
from paynotify.reconciliation._report import Discrepancy, DiscrepancyKind

__all__ = ["Matcher", "Recorded"]

Recorded = tuple[str, str, str, str, str, bool, str, str, str | None]
"""(event_id, kind, status, amount, currency, on the day, event state, order id, transaction id)"""

_RANK = {"succeeded": 3, "closed": 2, "failed": 2, "pending": 1}
_NOT_DELIVERED = frozenset({EventState.REJECTED.value, EventState.UNHANDLED.value})


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


class Matcher:
    def __init__(self, day: date, *, listed_limit: int = 10_000) -> None:
        self.day = day
        self.listed_limit = listed_limit
        self.payments: dict[str, Recorded] = {}
        self.refunds: dict[str, Recorded] = {}
        self.seen: set[str] = set()
        self.lines = self.matched = 0
        self.counts = {kind.value: 0 for kind in DiscrepancyKind}
        self.discrepancies: list[Discrepancy] = []
        self.unresolved: list[BillLine] = []

    def add(self, event: StoredEvent) -> None:
        """Index one recorded event (payments and refunds; anything else is not on a trade bill)."""
        if event.kind not in (Kind.PAYMENT.value, Kind.REFUND.value):
            return
        data = json.loads(event.result_json)
        refund = event.kind == Kind.REFUND.value
        amount = data.get("refund_amount" if refund else "amount")
        moment = _time(data.get("refunded_at" if refund else "paid_at"))
        when = (
            moment.astimezone(BEIJING).date()
            if moment
            else datetime.fromtimestamp(event.created_at, BEIJING).date()
        )
        record: Recorded = (event.event_id, event.kind, str(data.get("status", "")), str(amount or ""),
                            str(data.get("currency", "CNY")), when == self.day, event.state.value,
                            event.order_id, data.get("transaction_id"))  # fmt: skip
        index = self.refunds if refund else self.payments
        if refund:
            keys = (f"p:{data.get('provider_refund_id') or ''}", f"r:{data.get('refund_id') or ''}")
        else:
            keys = (f"t:{data.get('transaction_id') or ''}", f"o:{event.order_id}")
        for key in keys:
            if len(key) > 2:
                held = index.get(key)
                if held is None or _rank(record) > _rank(held):
                    index[key] = record

    def find(self, line: BillLine) -> Recorded | None:
        if line.kind is Kind.REFUND:
            return self.refunds.get(f"p:{line.provider_refund_id}") or self.refunds.get(f"r:{line.refund_id}")
        return self.payments.get(f"t:{line.transaction_id}") or self.payments.get(f"o:{line.order_id}")

    def step(self, lines: Iterator[BillLine], count: int) -> int:
        """Match up to `count` more lines (run in a worker thread); how many were read."""
        read = 0
        for line in lines:
            read += 1
            self.lines += 1
            record = self.find(line)
            if record is None:
                self.unresolved.append(line)
            else:
                self.compare(line, record)
            if read >= count:
                break
        return read

    def compare(self, line: BillLine, record: Recorded) -> None:
        event_id, _, status, amount, currency, _, state, _, _ = record
        self.seen.add(event_id)
        recorded = "rejected" if state == EventState.REJECTED.value else status
        if recorded != line.status.value:
            self.note(DiscrepancyKind.STATE_MISMATCH, line, event_id=event_id, recorded_status=recorded,
                      recorded_amount=amount)  # fmt: skip
        elif _decimal(amount) != line.amount or currency != line.currency:
            shown = f"{amount} {currency}" if currency != line.currency else amount
            self.note(DiscrepancyKind.AMOUNT_MISMATCH, line, event_id=event_id, recorded_status=recorded,
                      recorded_amount=shown)  # fmt: skip
        else:
            self.matched += 1

    def note(self, kind: DiscrepancyKind, line: BillLine, **fields: str | None) -> None:
        self.counts[kind.value] += 1
        if len(self.discrepancies) < self.listed_limit:
            self.discrepancies.append(Discrepancy(
                kind=kind, line=line.line, order_id=line.order_id, record_kind=line.kind.value,
                transaction_id=line.transaction_id, refund_id=line.refund_id, bill_amount=str(line.amount),
                bill_status=line.status.value, **fields,  # type: ignore[arg-type]
            ))  # fmt: skip

    def unknown(self) -> None:
        """Recorded as succeeded on the day, delivered or to be, and on no line of the bill."""
        for index in (self.payments, self.refunds):
            for record in index.values():
                event_id, kind, status, amount, _, on_day, state, order_id, txn = record
                if event_id in self.seen or not on_day or status != "succeeded" or state in _NOT_DELIVERED:
                    continue
                self.seen.add(event_id)
                self.counts[DiscrepancyKind.UNKNOWN.value] += 1
                if len(self.discrepancies) < self.listed_limit:
                    self.discrepancies.append(Discrepancy(
                        kind=DiscrepancyKind.UNKNOWN, line=None, order_id=order_id,
                        event_id=event_id, record_kind=kind, transaction_id=txn, recorded_amount=amount,
                        recorded_status=status, note="recorded, not on the provider's bill: for a person",
                    ))  # fmt: skip

    @property
    def truncated(self) -> bool:
        return sum(self.counts.values()) > len(self.discrepancies)


def _rank(record: Recorded) -> int:
    return -1 if record[6] in _NOT_DELIVERED else _RANK.get(record[2], 0)


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
