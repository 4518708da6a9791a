"""The memory store keeps a settled event as one flat tuple: nothing for the garbage collector to walk."""

from __future__ import annotations

import gc
import time

from test_store_contract import result

from paynotify import MemoryStore, PaymentResult
from paynotify._stores.base import ClaimState, EventState
from paynotify._stores.memory import _Record


async def test_a_completed_event_is_one_untracked_tuple_and_reads_back_the_same() -> None:
    store = MemoryStore()
    paid = result(order_id="o-1").model_copy(update={"raw": {"trade_no": "2024", "total_amount": "88.88"}})
    claim = await store.claim(paid, lease_seconds=60)
    record = store._records[paid.event_id]
    assert isinstance(record, _Record)
    assert record.result is paid
    await store.complete(paid.event_id, claim.token or "")
    frozen = store._records[paid.event_id]
    assert isinstance(frozen, tuple)
    assert not any(isinstance(o, PaymentResult | _Record) for o in gc.get_referents(frozen))
    for _ in range(3):  # tuples of plain values are untracked as collections come across them
        gc.collect()
    assert not gc.is_tracked(frozen)
    event = await store.get(paid.event_id)
    assert event is not None
    assert (event.state, event.result()) == (EventState.DONE, paid)
    assert (await store.claim(paid, lease_seconds=60)).state is ClaimState.DONE


async def test_a_completed_event_thaws_when_it_changes_again() -> None:
    store = MemoryStore()
    paid = result(order_id="o-1")
    claim = await store.claim(paid, lease_seconds=60)
    await store.subscriber_done(paid.event_id, claim.token or "", "a")
    await store.complete(paid.event_id, claim.token or "")
    assert [e.event_id for e in await store.find(order_id="o-1", states=[EventState.DONE])] == [paid.event_id]
    assert await store.requeue(paid.event_id, replay=True)
    assert isinstance(store._records[paid.event_id], _Record)
    event = await store.get(paid.event_id)
    assert event is not None
    assert event.state is EventState.PENDING
    assert event.attempts == 1
    assert event.result() == paid
    assert event.done_subscribers == frozenset()
    assert await store.purge(before=time.time() + 1, states=[EventState.PENDING]) == 1


async def test_a_settled_event_with_nested_raw_fields_reads_back_the_same() -> None:
    store = MemoryStore()
    raw = {"amount": {"total": 8888, "currency": "CNY"}, "payer": {"openid": "o-1"}, "empty": "", "n": None}
    paid = result(order_id="o-1").model_copy(update={"raw": raw})
    claim = await store.claim(paid, lease_seconds=60)
    await store.complete(paid.event_id, claim.token or "")
    event = await store.get(paid.event_id)
    assert event is not None
    assert event.result() == paid
    assert event.result().raw == raw
    assert list(event.result().raw) == list(raw)


async def test_released_and_dead_lettered_events_are_compacted_too() -> None:
    store = MemoryStore()
    first, second = result(order_id="o-1"), result(order_id="o-2")
    claim = await store.claim(first, lease_seconds=60)
    await store.release(first.event_id, claim.token or "", error="boom")
    assert getattr(store._records[first.event_id], "result", None) is None
    assert await store.enqueue(second)
    (lease,) = await store.acquire(limit=1, lease_seconds=60)
    await store.dead_letter(second.event_id, lease.token, error="gave up")
    assert getattr(store._records[second.event_id], "result", None) is None
    assert [e.result() for e in await store.find(states=[EventState.RELEASED, EventState.DEAD])] == [
        second,
        first,
    ]
