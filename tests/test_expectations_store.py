"""The expectations' contract, on every store: idempotent, one lease each, expired leases taken over."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _store_backends import BACKENDS, backend_stores

from paynotify._stores.expectations import ExpectationState

T0 = 1_800_000_000.0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_expect_is_idempotent_and_settles_once(backend: str, tmp_path: Path) -> None:
    async with backend_stores(backend, tmp_path) as make:
        x = make().expectations
        first = await x.expect("shop", "o-1", amount="88.80", until=T0 + 3600, now=T0, first_due=T0 + 60)
        again = await x.expect("shop", "o-1", amount="1", until=T0 + 9, now=T0 + 5)
        assert again == first
        assert (first.amount, first.state, first.next_due, first.refund_id) == (
            "88.80", ExpectationState.OPEN, T0 + 60, None,
        )  # fmt: skip
        refund = await x.expect("shop", "o-1", refund_id="r-1", amount=3, until=T0 + 60, now=T0)
        assert refund.key == ("shop", "o-1", "r-1")
        assert refund != first
        assert await x.settle("shop", "o-1", outcome="succeeded", now=T0 + 1)
        assert not await x.settle("shop", "o-1", outcome="closed", now=T0 + 2)
        settled = await x.get("shop", "o-1")
        assert settled is not None
        assert (settled.state, settled.outcome) == (ExpectationState.SETTLED, "succeeded")
        assert await x.get("shop", "o-2") is None
        assert [r.key for r in await x.find(states=[ExpectationState.OPEN])] == [("shop", "o-1", "r-1")]
        assert len(await x.find(account="shop")) == 2
        assert await x.find(account="other") == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_take_leases_each_due_expectation_once(backend: str, tmp_path: Path) -> None:
    async with backend_stores(backend, tmp_path) as make:
        x = make().expectations
        for i in range(6):
            await x.expect("shop", f"o-{i}", amount=1, until=T0 + 3600, now=T0, first_due=T0 + i)
        assert await x.take(limit=10, lease_seconds=30, now=T0 - 1) == []
        first = await x.take(limit=2, lease_seconds=30, now=T0 + 10)
        assert [r.order_id for r in first] == ["o-0", "o-1"]
        assert {r.attempts for r in first} == {1}
        assert first[0].lease_token is not None
        rest = await x.take(limit=10, lease_seconds=30, now=T0 + 11)
        assert sorted(r.order_id for r in rest) == ["o-2", "o-3", "o-4", "o-5"]
        assert await x.take(limit=10, lease_seconds=30, now=T0 + 39) == []  # all leased
        # A lease that ran out (its sweeper died) is taken over; the old holder cannot reschedule.
        again = sorted(await x.take(limit=5, lease_seconds=30, now=T0 + 40.5), key=lambda r: r.order_id)
        assert [(r.order_id, r.attempts) for r in again] == [("o-0", 2), ("o-1", 2)]
        assert not await x.reschedule(first[0], next_due=T0 + 100, now=T0 + 42)
        assert await x.reschedule(again[0], next_due=T0 + 100, error="not found", now=T0 + 42)
        record = await x.get("shop", "o-0")
        assert record is not None
        assert (record.next_due, record.lease_token, record.last_error) == (
            T0 + 100,
            None,
            "not found",
        )
        [o2] = [r for r in rest if r.order_id == "o-2"]
        assert await x.reschedule(o2, next_due=T0 + 50, now=T0 + 42, attempts=0)  # put back, unasked
        put_back = await x.get("shop", "o-2")
        assert put_back is not None
        assert (put_back.attempts, put_back.next_due) == (0, T0 + 50)
        assert await x.settle("shop", "o-1", outcome="unpaid", state=ExpectationState.EXPIRED, now=T0 + 43)
        late = await x.take(limit=10, lease_seconds=30, now=T0 + 200)
        assert "o-1" not in {r.order_id for r in late}
        assert "o-0" in {r.order_id for r in late}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"])
async def test_concurrent_takes_from_several_stores_never_share(backend: str, tmp_path: Path) -> None:
    async with backend_stores(backend, tmp_path) as make:
        stores = [make().expectations for _ in range(4)]
        for i in range(40):
            await stores[0].expect("shop", f"o-{i}", amount=1, until=T0 + 3600, now=T0, first_due=T0)
        batches = await asyncio.gather(
            *(s.take(limit=7, lease_seconds=30, now=T0 + 1) for s in stores for _ in range(3))
        )
        taken = [r.order_id for batch in batches for r in batch]
        assert len(taken) == len(set(taken)) == 40
