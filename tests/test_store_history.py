"""The attempt history and the audit log, on every store backend (memory, SQLite, PostgreSQL, Redis).

Times of attempts and audit entries are pinned values; only the events' own times come from the
clock (the purge's `before` is read from the clock for them).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from _store_backends import BACKENDS, backend_stores

from paynotify import (
    Attempt,
    AttemptOutcome,
    AuditEntry,
    ClaimState,
    Kind,
    PaymentResult,
    Status,
    Store,
    make_event_id,
)
from paynotify._stores.history import ATTEMPTS_KEPT, AUDIT_BATCH, AUDIT_IDS_KEPT, ERROR_LENGTH

Factory = Callable[[], Store]
T0 = 1_700_000_000.0
"""A pinned time for attempts and audit entries (2023-11-14)."""


def result(order_id: str = "o-1") -> PaymentResult:
    return PaymentResult(
        provider="examplepay",
        account="shop",
        kind=Kind.PAYMENT,
        status=Status.SUCCEEDED,
        provider_status="TRADE_SUCCESS",
        order_id=order_id,
        event_id=make_event_id("shop", Kind.PAYMENT, order_id, None, "TRADE_SUCCESS"),
    )


def attempt(n: float, outcome: str = AttemptOutcome.FAILED, error: str | None = "boom") -> Attempt:
    return Attempt(T0 + n, T0 + n + 0.25, outcome, error, "host-a:42")


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    async with backend_stores(request.param, tmp_path) as make:
        yield make


@pytest.fixture
async def store(stores: Factory) -> Store:
    s = stores()
    await s.open()
    return s


async def test_a_failure_then_a_success_leave_two_attempts_newest_first(store: Store) -> None:
    r = result()
    first = await store.claim(r, lease_seconds=60)
    assert first.token
    await store.release(r.event_id, first.token, error="mailer down", attempt=attempt(0, error="mailer down"))
    second = await store.claim(r, lease_seconds=60)
    assert second.state is ClaimState.NEW
    assert second.token
    await store.complete(r.event_id, second.token, attempt=attempt(10, AttemptOutcome.DELIVERED, None))
    found = await store.history.attempts(r.event_id)
    assert found == [attempt(10, AttemptOutcome.DELIVERED, None), attempt(0, error="mailer down")]
    assert found[0].duration == 0.25
    assert found[0].instance == "host-a:42"
    assert found[0].operator is None


async def test_queued_settlements_record_their_attempts(store: Store) -> None:
    r = result()
    assert await store.enqueue(r)
    (lease,) = await store.acquire(limit=1, lease_seconds=60)
    await store.reschedule(r.event_id, lease.token, at=0.0, error="e1", attempt=attempt(0, error="e1"))
    (lease,) = await store.acquire(limit=1, lease_seconds=60)
    await store.dead_letter(
        r.event_id, lease.token, error="e2", attempt=attempt(1, AttemptOutcome.DEAD, "e2")
    )
    outcomes = [(a.outcome, a.error) for a in await store.history.attempts(r.event_id)]
    assert outcomes == [("dead", "e2"), ("failed", "e1")]


async def test_settling_without_an_attempt_records_none(store: Store) -> None:
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    await store.complete(r.event_id, claim.token)
    assert await store.history.attempts(r.event_id) == []


async def test_the_history_keeps_the_newest_attempts_only(store: Store) -> None:
    r = result()
    for n in range(ATTEMPTS_KEPT + 3):
        claim = await store.claim(r, lease_seconds=60)
        assert claim.token
        await store.release(r.event_id, claim.token, error=f"e{n}", attempt=attempt(n, error=f"e{n}"))
    found = await store.history.attempts(r.event_id)
    assert len(found) == ATTEMPTS_KEPT
    assert found[0].error == f"e{ATTEMPTS_KEPT + 2}"
    assert found[-1].error == "e3"


async def test_added_attempts_are_capped_and_errors_bounded(store: Store) -> None:
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    for n in range(ATTEMPTS_KEPT + 2):
        await store.history.add_attempt(r.event_id, attempt(n, error=f"e{n}"))
    await store.history.add_attempt(r.event_id, attempt(99, error="x" * (ERROR_LENGTH * 3)))
    found = await store.history.attempts(r.event_id)
    assert len(found) == ATTEMPTS_KEPT
    assert found[0].error == "x" * ERROR_LENGTH
    assert found[1].error == f"e{ATTEMPTS_KEPT + 1}"


async def test_an_audit_entry_lists_newest_first_and_marks_each_event(store: Store) -> None:
    a, b = result("o-a"), result("o-b")
    for r in (a, b):
        claim = await store.claim(r, lease_seconds=60)
        assert claim.token
        await store.complete(r.event_id, claim.token, attempt=attempt(0, AttemptOutcome.DELIVERED, None))
    replay = AuditEntry.new("alice", "replay", [a.event_id], at=T0 + 1)
    bulk = AuditEntry.new(
        "cli:root", "bulk-retry", [a.event_id, b.event_id], outcome="1 of 2 requeued", selection="state=dead",
        at=T0 + 2,
    )  # fmt: skip
    await store.history.audit(replay)
    await store.history.audit(bulk)
    assert await store.history.audit_log() == [bulk, replay]
    assert bulk.count == 2
    assert bulk.selection == "state=dead"
    history = await store.history.attempts(a.event_id)
    assert [(h.outcome, h.operator, h.error) for h in history] == [
        ("bulk-retry", "cli:root", "1 of 2 requeued"),
        ("replay", "alice", None),
        ("delivered", None, None),
    ]
    assert [h.operator for h in await store.history.attempts(b.event_id)] == ["cli:root", None]


async def test_an_audit_of_an_unknown_event_leaves_no_history(store: Store) -> None:
    entry = AuditEntry.new("alice", "retry", ["f" * 32], outcome="not found", at=T0)
    await store.history.audit(entry)
    assert await store.history.audit_log() == [entry]
    assert await store.history.attempts("f" * 32) == []


async def test_the_audit_log_pages_by_position_and_filters_by_time(store: Store) -> None:
    entries = [AuditEntry.new("alice", "retry", [], at=T0 + n) for n in range(7)]
    for entry in entries:
        await store.history.audit(entry)
    newest = list(reversed(entries))
    first = await store.history.audit_log(limit=3)
    assert first == newest[:3]
    second = await store.history.audit_log(limit=3, before_id=first[-1].id)
    assert second == newest[3:6]
    assert await store.history.audit_log(limit=3, before_id=second[-1].id) == newest[6:]
    assert await store.history.audit_log(since=T0 + 5) == newest[:2]


async def test_a_purge_takes_the_events_attempts_and_the_old_audit_entries(store: Store) -> None:
    gone, kept = result("o-gone"), result("o-kept")
    claim = await store.claim(gone, lease_seconds=60)
    assert claim.token
    await store.complete(gone.event_id, claim.token, attempt=attempt(0, AttemptOutcome.DELIVERED, None))
    claim = await store.claim(kept, lease_seconds=60)
    assert claim.token
    await store.release(kept.event_id, claim.token, attempt=attempt(0))  # RELEASED: not purged
    old = AuditEntry.new("alice", "replay", [gone.event_id], at=T0)
    recent = AuditEntry.new("alice", "replay", [kept.event_id], at=time.time() + 3600)
    await store.history.audit(old)
    await store.history.audit(recent)
    # A filtered purge is an operator's, not the retention's: the audit log stays.
    assert await store.purge(before=time.time() + 1, account="elsewhere") == 0
    assert len(await store.history.audit_log()) == 2
    assert await store.purge(before=time.time() + 1) == 1
    assert await store.history.attempts(gone.event_id) == []
    assert len(await store.history.attempts(kept.event_id)) == 2
    assert await store.history.audit_log() == [recent]


async def test_releasing_an_unknown_event_with_an_attempt_is_no_error_and_leaves_none(
    store: Store,
) -> None:
    unknown = "e" * 32  # (complete on SQLite refuses an unknown event: its claim was lost)
    await store.release(unknown, "no-token", error="x", attempt=attempt(1))
    await store.reschedule(unknown, "no-token", at=0.0, error="x", attempt=attempt(2))
    await store.dead_letter(unknown, "no-token", error="x", attempt=attempt(3, AttemptOutcome.DEAD))
    assert await store.history.attempts(unknown) == []
    assert await store.get(unknown) is None


async def test_a_late_release_without_the_lease_still_records_its_attempt(store: Store) -> None:
    r = result()
    first = await store.claim(r, lease_seconds=60)
    assert first.token
    await store.release(r.event_id, "not-the-token", error="late", attempt=attempt(0, error="late"))
    assert [a.error for a in await store.history.attempts(r.event_id)] == ["late"]


async def test_an_audit_of_more_events_than_one_write_takes_marks_them_all(store: Store) -> None:
    many = [result(f"o-{i}") for i in range(AUDIT_BATCH + 2)]
    for r in many:
        assert await store.enqueue(r)
    ids = [r.event_id for r in many]
    entry = AuditEntry.new("cli:root", "bulk-requeue", ids, at=T0)
    await store.history.audit(entry, events=ids)
    (logged,) = await store.history.audit_log()
    assert logged.count == len(ids)
    assert len(logged.event_ids) == AUDIT_IDS_KEPT
    for event_id in (ids[0], ids[AUDIT_BATCH - 1], ids[AUDIT_BATCH], ids[-1]):
        assert [a.operator for a in await store.history.attempts(event_id)] == ["cli:root"]
