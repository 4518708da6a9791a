"""find(search=...) on every backend: order id prefix, transaction id, refund ids, event-id prefix,
combined with the other filters, kept up to date by writes and purges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from _store_backends import BACKENDS, backend_stores

from paynotify import EventState, Kind, PaymentResult, Status, Store, UnhandledEvent, make_event_id

Factory = Callable[[], Store]


def payment(order_id: str, txn: str, account: str = "shop") -> PaymentResult:
    return PaymentResult(
        provider="examplepay", account=account, kind=Kind.PAYMENT, status=Status.SUCCEEDED,
        provider_status="TRADE_SUCCESS", order_id=order_id, transaction_id=txn,
        event_id=make_event_id(account, Kind.PAYMENT, txn, None, "TRADE_SUCCESS"),
    )  # fmt: skip


def refund(order_id: str, txn: str, refund_id: str, provider_refund_id: str) -> PaymentResult:
    return PaymentResult(
        provider="examplepay", account="shop", kind=Kind.REFUND, status=Status.SUCCEEDED,
        provider_status="SUCCESS", order_id=order_id, transaction_id=txn, refund_id=refund_id,
        provider_refund_id=provider_refund_id,
        event_id=make_event_id("shop", Kind.REFUND, txn, refund_id, "SUCCESS"),
    )  # fmt: skip


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with backend_stores(request.param, tmp_path) as make:
        s = make()
        await s.open()
        yield s


async def found(store: Store, text: str, **filters: object) -> set[str]:
    return {e.order_id + "/" + e.kind for e in await store.find(search=text, **filters)}  # type: ignore[arg-type]


async def test_search_finds_by_each_kind_of_id(store: Store) -> None:
    await store.enqueue(payment("ORD-2024-0001", "4200001111"))
    await store.enqueue(payment("ord-2024-0002", "4200002222"))
    await store.enqueue(payment("X-9", "4200003333"))
    r = refund("ORD-2024-0001", "4200001111", "RF-77", "50300001")
    await store.enqueue(r)
    await store.record(
        UnhandledEvent(provider="examplepay", account="shop", event_type="X", event_id="ab" * 16),
        EventState.UNHANDLED, reason=None,
    )  # fmt: skip
    # Order id prefix, either case (ASCII letters fold on every store).
    assert await found(store, "ord-2024") == {"ORD-2024-0001/payment", "ord-2024-0002/payment",
                                              "ORD-2024-0001/refund"}  # fmt: skip
    assert await found(store, "  Ord-2024-0002 ") == {"ord-2024-0002/payment"}
    assert await found(store, "2024") == set()  # a prefix, not a substring
    # Transaction id: exact (a prefix of it finds nothing), and case-sensitive.
    assert await found(store, "4200003333") == {"X-9/payment"}
    assert await found(store, "420000333") == set()
    assert await found(store, "4200001111") == {"ORD-2024-0001/payment", "ORD-2024-0001/refund"}
    # Refund ids: merchant's and provider's.
    assert await found(store, "RF-77") == {"ORD-2024-0001/refund"}
    assert await found(store, "rf-77") == set()
    assert await found(store, "50300001") == {"ORD-2024-0001/refund"}
    # Event-id prefix: 6 hex characters or more, any case; 5 are not enough.
    assert await found(store, r.event_id[:6].upper()) >= {"ORD-2024-0001/refund"}
    assert {e.event_id for e in await store.find(search=r.event_id[:12])} == {r.event_id}
    assert await found(store, r.event_id[:5]) == set()
    assert [e.event_id for e in await store.find(search="ababab")] == ["ab" * 16]
    assert await found(store, "nothing-like-it") == set()


async def test_search_combines_with_filters_order_and_limit(store: Store) -> None:
    for i in range(5):
        await store.enqueue(payment(f"shop-{i}", f"t-{i}"))
        await asyncio.sleep(0.002)
    await store.enqueue(payment("shop-x", "t-x", account="other"))
    newest = await store.find(search="shop-", limit=2)
    assert [e.order_id for e in newest] == ["shop-x", "shop-4"]
    assert [e.order_id for e in await store.find(search="shop-", account="shop", limit=2)] == [
        "shop-4",
        "shop-3",
    ]
    page = await store.find(search="shop-", account="shop", limit=2, created_before=newest[1].created_at,
                            before_event_id=newest[1].event_id)  # fmt: skip
    assert [e.order_id for e in page] == ["shop-3", "shop-2"]
    assert await store.find(search="shop-", states=[EventState.DONE]) == []
    assert len(await store.find(search="shop-", states=[EventState.PENDING])) == 6


async def test_search_forgets_purged_events_and_sees_new_ones(store: Store) -> None:
    await store.enqueue(payment("keep-1", "t-keep"))
    assert await found(store, "keep") == {"keep-1/payment"}
    [lease] = await store.acquire(limit=1, lease_seconds=30)
    await store.complete(lease.event.event_id, lease.token)
    assert await store.purge(before=time.time() + 1) == 1
    assert await found(store, "keep") == set()
    assert await found(store, "t-keep") == set()
    await store.enqueue(payment("keep-2", "t-keep-2"))
    assert await found(store, "t-keep-2") == {"keep-2/payment"}


async def test_redis_indexes_events_recorded_before_the_search_when_opened(tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    from paynotify._stores.redis_search import MARKER

    async with backend_stores("redis", tmp_path) as make:
        old = make()
        await old.open()
        await old.enqueue(payment("legacy-1", "t-legacy"))
        await old.enqueue(refund("legacy-1", "t-legacy", "RF-legacy", "PR-legacy"))
        prefix = old.prefix  # type: ignore[attr-defined]
        client = aioredis.Redis.from_url("redis://127.0.0.1:6379/15", decode_responses=True)
        try:
            # As an earlier version left it: no index, no members in the hashes, no marker.
            await client.delete(prefix + "x", prefix + MARKER)
            for key in [k async for k in client.scan_iter(match=prefix + "e:*")]:
                await client.hdel(key, "skeys")
            assert await old.find(search="t-legacy") == []
            await old.close()
            upgraded = make()
            await upgraded.open()
            assert await found(upgraded, "t-legacy") == {"legacy-1/payment", "legacy-1/refund"}
            assert await found(upgraded, "PR-legacy") == {"legacy-1/refund"}
            assert await client.exists(prefix + MARKER)
            await upgraded.close()
        finally:
            await client.aclose()
