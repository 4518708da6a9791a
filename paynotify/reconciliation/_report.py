"""What a reconciliation found: a frozen, JSON-serialisable report per account and Beijing day."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Discrepancy", "DiscrepancyKind", "ReconciliationReport"]


class DiscrepancyKind(StrEnum):
    MISSING = "missing"
    """On the bill, not recorded (a lost notification): healed by a query when asked."""
    UNKNOWN = "unknown"
    """Recorded as succeeded but not on the bill: never fixed automatically, for a person."""
    AMOUNT_MISMATCH = "amount_mismatch"
    STATE_MISMATCH = "state_mismatch"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: DiscrepancyKind
    line: int | None
    """The bill's 1-based line number (None for `unknown`: it is not on the bill)."""
    order_id: str
    event_id: str | None = None
    record_kind: str = "payment"
    transaction_id: str | None = None
    refund_id: str | None = None
    bill_amount: str | None = None
    recorded_amount: str | None = None
    bill_status: str | None = None
    recorded_status: str | None = None
    healed: str | None = None
    """The outcome of the query that healed it (`delivered`, `queued`, `duplicate`), else None."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    """One account's day: `matched` lines, the discrepancies (at most `listed_limit` listed; the
    counts are always complete), and when it ran.

    >>> report.counts["missing"], report.discrepancies[0].line   # doctest: +SKIP
    (1, 17)
    """

    account: str
    provider: str
    day: str
    run_at: float
    lines: int
    matched: int
    counts: dict[str, int] = field(default_factory=dict)
    discrepancies: tuple[Discrepancy, ...] = ()
    healed: int = 0
    truncated: bool = False

    def open_counts(self) -> dict[str, int]:
        """Discrepancies by kind that still need a person (a healed one does not)."""
        counts = {kind.value: self.counts.get(kind.value, 0) for kind in DiscrepancyKind}
        counts[DiscrepancyKind.MISSING.value] -= self.healed
        return counts

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReconciliationReport:
        data: dict[str, Any] = json.loads(text)
        items = tuple(
            Discrepancy(**{**item, "kind": DiscrepancyKind(item["kind"])})
            for item in data.pop("discrepancies")
        )
        return cls(**data, discrepancies=items)

    def same_as(self, other: ReconciliationReport) -> bool:
        """The same findings, whenever each ran."""
        return asdict(self) | {"run_at": 0} == asdict(other) | {"run_at": 0}
