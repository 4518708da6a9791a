"""One conformance suite for every store backend: memory, SQLite, PostgreSQL, Redis.

Server backends skip with a message when their server is not reachable (see _store_backends.py).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from _ledger_provider import pin_store_clock
from _store_backends import BACKENDS, backend_stores

from paynotify import (
    ClaimState,
    EventState,
    Kind,
    PaymentResult,
    Status,
    Store,
    UnhandledEvent,
    make_event_id,
)

Factory = Callable[[], Store]


def result(order_id: str = "o-1", status: str = "TRADE_SUCCESS", account: str = "shop") -> PaymentResult:
    return PaymentResult(
        provider="examplepay",
        account=account,
        kind=Kind.PAYMENT,
        status=Status.SUCCEEDED,
        provider_status=status,
        order_id=order_id,
        event_id=make_event_id(account, Kind.PAYMENT, order_id, None, status),
    )


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    async with backend_stores(request.param, tmp_path) as make:
        yield make


@pytest.fixture
async def store(stores: Factory) -> Store:
    s = stores()
    await s.open()
    return s


async def stored(store: Store, event_id: str) -> tuple[EventState, int, frozenset[str]]:
    event = await store.get(event_id)
    assert event is not None
    return event.state, event.attempts, event.done_subscribers


# -- inline delivery ---------------------------------------------------------------------------


async def test_claim_complete_then_done(store: Store) -> None:
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.state is ClaimState.NEW
    assert claim.token
    assert claim.done_subscribers == frozenset()
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.IN_FLIGHT
    await store.complete(r.event_id, claim.token)
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE
    event = await store.get(r.event_id)
    assert event is not None
    assert (event.state, event.order_id, event.account, event.attempts) == (EventState.DONE, "o-1", "shop", 1)
    assert (event.provider, event.kind, event.status) == ("examplepay", "payment", "succeeded")
    assert event.result() == r


async def test_release_keeps_subscriber_records_for_the_retry(store: Store) -> None:
    r = result()
    first = await store.claim(r, lease_seconds=60)
    assert first.token
    await store.subscriber_done(r.event_id, first.token, "app.ship")
    await store.release(r.event_id, first.token, error="RuntimeError: mailer down")
    event = await store.get(r.event_id)
    assert event is not None
    assert (event.state, event.last_error) == (EventState.RELEASED, "RuntimeError: mailer down")
    second = await store.claim(r, lease_seconds=60)
    assert second.state is ClaimState.NEW
    assert second.token != first.token
    assert second.done_subscribers == {"app.ship"}
    assert await stored(store, r.event_id) == (EventState.IN_FLIGHT, 2, frozenset({"app.ship"}))


async def test_a_late_release_by_a_lost_lease_does_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = pin_store_clock(monkeypatch, at=time.time())
    r = result()
    first = await store.claim(r, lease_seconds=0.05)
    clock.at += 0.1
    second = await store.claim(r, lease_seconds=60)  # lease expired: taken over
    assert first.token
    assert second.state is ClaimState.NEW
    await store.release(r.event_id, first.token)  # the old owner wakes up late
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.IN_FLIGHT


async def test_complete_sticks_even_after_the_lease_was_lost(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = pin_store_clock(monkeypatch, at=time.time())
    r = result()
    first = await store.claim(r, lease_seconds=0.05)
    clock.at += 0.1
    assert first.token
    await store.complete(r.event_id, first.token)  # the subscribers did run
    assert (await store.claim(r, lease_seconds=60)).state is ClaimState.DONE


async def test_concurrent_claims_have_one_winner(store: Store) -> None:
    r = result()
    claims = await asyncio.gather(*(store.claim(r, lease_seconds=60) for _ in range(30)))
    assert [c.state for c in claims].count(ClaimState.NEW) == 1


async def test_claims_through_separate_connections_have_one_winner(stores: Factory) -> None:
    a, b = stores(), stores()
    events = [result(f"o-{i}") for i in range(20)]
    claims = await asyncio.gather(*(s.claim(r, lease_seconds=60) for r in events for s in (a, b, a, b)))
    assert [c.state for c in claims].count(ClaimState.NEW) == len(events)


async def test_a_second_store_sees_what_the_first_recorded(stores: Factory) -> None:
    r = result()
    first = stores()
    claim = await first.claim(r, lease_seconds=60)
    assert claim.token
    await first.complete(r.event_id, claim.token)
    await first.close()
    assert (await stores().claim(r, lease_seconds=60)).state is ClaimState.DONE


async def test_unknown_event(store: Store) -> None:
    assert await store.get("nope") is None
    assert await store.requeue("nope") is False


# -- queued delivery ---------------------------------------------------------------------------


async def test_enqueue_records_once_and_acknowledges_duplicates(store: Store) -> None:
    r = result()
    assert await store.enqueue(r) is True
    assert await store.enqueue(r) is False
    event = await store.get(r.event_id)
    assert event is not None
    assert (event.state, event.attempts) == (EventState.PENDING, 0)
    assert event.result() == r


async def test_enqueue_after_completion_changes_nothing(store: Store) -> None:
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    await store.complete(r.event_id, claim.token)
    assert await store.enqueue(r) is False
    assert (await stored(store, r.event_id))[0] is EventState.DONE


async def test_acquire_leases_due_events_oldest_first(store: Store) -> None:
    events = [result(f"o-{i}") for i in range(5)]
    for r in events:
        assert await store.enqueue(r)
        await asyncio.sleep(0.002)  # distinct due times
    leases = await store.acquire(limit=3, lease_seconds=60)
    assert [lease.event.order_id for lease in leases] == ["o-0", "o-1", "o-2"]
    assert all(lease.event.state is EventState.IN_FLIGHT and lease.event.attempts == 1 for lease in leases)
    rest = await store.acquire(limit=10, lease_seconds=60)
    assert [lease.event.order_id for lease in rest] == ["o-3", "o-4"]
    assert await store.acquire(limit=10, lease_seconds=60) == []


async def test_dispatchers_on_separate_connections_never_share_an_event(stores: Factory) -> None:
    a, b = stores(), stores()
    for i in range(40):
        await a.enqueue(result(f"o-{i}"))
    batches = await asyncio.gather(*(s.acquire(limit=7, lease_seconds=60) for s in (a, b) * 4))
    ids = [lease.event.event_id for batch in batches for lease in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_an_expired_lease_is_acquired_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stores' clock pinned: the lease must still hold at the second acquire however slow it is.
    clock = pin_store_clock(monkeypatch, at=time.time())
    r = result()
    await store.enqueue(r)
    [crashed] = await store.acquire(limit=1, lease_seconds=0.05)
    assert await store.acquire(limit=1, lease_seconds=60) == []
    clock.at += 0.1
    [retaken] = await store.acquire(limit=1, lease_seconds=60)
    assert retaken.event.event_id == r.event_id
    assert retaken.token != crashed.token
    assert retaken.event.attempts == 2
    await store.reschedule(r.event_id, crashed.token, at=clock.at, error="late")  # ignored: lease lost
    assert (await stored(store, r.event_id))[0] is EventState.IN_FLIGHT


async def test_reschedule_waits_until_due(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stores' clock pinned: "not yet due" must not depend on how fast a loaded machine runs.
    clock = pin_store_clock(monkeypatch, at=time.time())
    r = result()
    await store.enqueue(r)
    [lease] = await store.acquire(limit=1, lease_seconds=60)
    await store.subscriber_done(r.event_id, lease.token, "app.ship")
    await store.reschedule(r.event_id, lease.token, at=clock.at + 0.15, error="TimeoutError: crm")
    event = await store.get(r.event_id)
    assert event is not None
    assert (event.state, event.last_error) == (EventState.PENDING, "TimeoutError: crm")
    assert event.next_attempt_at is not None
    assert await store.acquire(limit=1, lease_seconds=60) == []
    clock.at += 0.2
    [again] = await store.acquire(limit=1, lease_seconds=60)
    assert again.event.done_subscribers == {"app.ship"}
    assert again.event.attempts == 2


async def test_dead_letter_and_retry(store: Store) -> None:
    r = result()
    await store.enqueue(r)
    [lease] = await store.acquire(limit=1, lease_seconds=60)
    await store.dead_letter(r.event_id, lease.token, error="gave up after 1 attempt")
    event = await store.get(r.event_id)
    assert event is not None
    assert (event.state, event.last_error) == (EventState.DEAD, "gave up after 1 attempt")
    assert await store.acquire(limit=1, lease_seconds=60) == []
    assert await store.requeue(r.event_id) is True
    [revived] = await store.acquire(limit=1, lease_seconds=60)
    assert revived.event.event_id == r.event_id


async def test_requeue_rules(store: Store) -> None:
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    assert await store.requeue(r.event_id) is False  # leased
    await store.subscriber_done(r.event_id, claim.token, "app.ship")
    await store.complete(r.event_id, claim.token)
    assert await store.requeue(r.event_id) is False  # done: only a replay runs it again
    assert await store.requeue(r.event_id, replay=True) is True
    assert await stored(store, r.event_id) == (EventState.PENDING, 1, frozenset())
    [lease] = await store.acquire(limit=1, lease_seconds=60)
    assert lease.event.done_subscribers == frozenset()


async def test_a_pending_event_can_be_claimed_inline(store: Store) -> None:
    r = result()
    await store.enqueue(r)
    claim = await store.claim(r, lease_seconds=60)
    assert claim.state is ClaimState.NEW
    assert await store.acquire(limit=1, lease_seconds=60) == []


# -- operations --------------------------------------------------------------------------------


async def test_find_filters_newest_first(store: Store) -> None:
    for i, (account, order) in enumerate([("shop", "a"), ("shop", "b"), ("other", "a"), ("shop", "a")]):
        r = result(order, status=f"S{i}", account=account)
        claim = await store.claim(r, lease_seconds=60)
        assert claim.token
        if i % 2 == 0:
            await store.complete(r.event_id, claim.token)
        await asyncio.sleep(0.002)
    everything = await store.find()
    assert [e.order_id for e in everything] == ["a", "a", "b", "a"]
    assert [(e.account, e.order_id) for e in await store.find(account="shop", order_id="a")] == [
        ("shop", "a"),
        ("shop", "a"),
    ]
    assert {e.order_id for e in await store.find(states=[EventState.DONE])} == {"a"}
    assert len(await store.find(states=[EventState.DONE])) == 2
    assert len(await store.find(limit=1)) == 1
    assert await store.find(account="nobody") == []


async def test_find_pages_by_keyset_with_ties_time_windows_provider_and_kind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's own clock, set by hand: several events created at the very same time are the
    # case a cursor of time alone would skip or repeat. Four decimals survive every backend.
    clock = [1_700_000_000.0]
    monkeypatch.setattr(sys.modules[type(store).__module__], "now", lambda: clock[0])
    times = [0.0, 0.0, 0.0, 1.5, 1.5, 2.25, 3.0, 3.0]
    for i, offset in enumerate(times):
        clock[0] = 1_700_000_000.0 + offset
        account = "shop" if i % 2 == 0 else "other"
        r = result(f"o-{i}", status=f"S{i}", account=account)
        if i == 5:
            r = r.model_copy(update={"provider": "otherpay"})
        await store.enqueue(r)
    unhandled = UnhandledEvent(provider="examplepay", account="shop", event_type="PAYSCORE", event_id="u-9")
    await store.record(unhandled, S.UNHANDLED, reason=None)  # at the last time, 3.0
    clock[0] = time.time()

    everything = await store.find()
    assert len(everything) == 9
    order = [(e.created_at, e.event_id) for e in everything]
    assert order == sorted(order, reverse=True)  # ties broken by event id, descending

    async def walk(page: int, **filters: Any) -> list[str]:
        seen: list[str] = []
        cursor: dict[str, Any] = {}
        while True:
            found = await store.find(limit=page, **filters, **cursor)
            seen += [e.event_id for e in found]
            assert len(seen) <= 9, seen  # a cursor that does not move would loop for ever
            if len(found) < page:
                return seen
            cursor = {"created_before": found[-1].created_at, "before_event_id": found[-1].event_id}

    ids = [e.event_id for e in everything]
    for page in (1, 2, 3, 4):
        assert await walk(page) == ids
    of_shop = [e.event_id for e in everything if e.account == "shop"]
    assert await walk(2, account="shop") == of_shop
    pending = [e.event_id for e in everything if e.state is S.PENDING]
    assert await walk(2, states=[S.PENDING]) == pending
    assert await walk(1, account="shop", order_id="o-2") == [result("o-2", "S2").event_id]

    base = 1_700_000_000.0
    window = await store.find(created_after=base + 1.5, created_before=base + 3.0)
    assert sorted(e.created_at - base for e in window) == [1.5, 1.5, 2.25]
    assert [e.order_id for e in await store.find(provider="otherpay")] == ["o-5"]
    assert [e.event_id for e in await store.find(kind="unhandled")] == ["u-9"]
    assert len(await store.find(kind="payment", provider="examplepay")) == 7
    with pytest.raises(ValueError, match="created_before"):
        await store.find(before_event_id="x")


async def test_purge_removes_only_old_events_in_the_given_states(store: Store) -> None:
    old_done, recent_done, old_dead = result("old"), result("recent"), result("dead")
    for r in (old_done, old_dead):
        await store.enqueue(r)
    [a, b] = await store.acquire(limit=2, lease_seconds=60)
    done_lease = a if a.event.event_id == old_done.event_id else b
    dead_lease = b if done_lease is a else a
    await store.complete(old_done.event_id, done_lease.token)
    await store.dead_letter(old_dead.event_id, dead_lease.token, error="x")
    await asyncio.sleep(0.05)
    cutoff = time.time()
    claim = await store.claim(recent_done, lease_seconds=60)
    assert claim.token
    await store.complete(recent_done.event_id, claim.token)
    assert await store.purge(before=cutoff) == 1
    assert await store.get(old_done.event_id) is None
    assert await store.get(recent_done.event_id) is not None
    assert await store.get(old_dead.event_id) is not None
    assert await store.purge(before=cutoff, states=[EventState.DEAD]) == 1
    assert await store.get(old_dead.event_id) is None


# The filtered purge. Beside an event every filter matches stand events that differ from it in one
# field each, the field named; all of them are settled before the cutoff. Two more never go: one
# updated after the cutoff, one pending (not a state purged by default).
T0 = 1_700_000_000.0
PURGE_FILTERS: dict[str, Any] = {
    "account": "shop",
    "provider": "examplepay",
    "order_id": "o-1",
    "created_after": T0 + 1.0,  # the matching event's very time: inclusive
}
DIFFERING: dict[str, Any] = {
    "account": "other",
    "provider": "otherpay",
    "order_id": "o-2",
    "created_after": T0 + 0.5,
}


def patch_clock(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The store's own clock, set by hand (four decimals survive every backend)."""
    clock = [T0]
    monkeypatch.setattr(sys.modules[type(store).__module__], "now", lambda: clock[0])
    return clock


async def settle_at(store: Store, clock: list[float], r: PaymentResult, created: float, done: float) -> None:
    clock[0] = created
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token
    clock[0] = done
    await store.complete(r.event_id, claim.token)


@pytest.mark.parametrize(
    "given",
    [list(c) for n in range(len(PURGE_FILTERS) + 1) for c in itertools.combinations(PURGE_FILTERS, n)],
    ids=lambda given: "+".join(given) or "none",
)
async def test_purge_deletes_what_every_filter_given_matches(
    store: Store, monkeypatch: pytest.MonkeyPatch, given: list[str]
) -> None:
    clock = patch_clock(store, monkeypatch)
    events: dict[str, PaymentResult] = {}
    for name in ["match", *DIFFERING, "updated"]:
        order = "o-2" if name == "order_id" else "o-1"
        r = result(order, status=name, account="other" if name == "account" else "shop")
        if name == "provider":
            r = r.model_copy(update={"provider": "otherpay"})
        created = DIFFERING["created_after"] if name == "created_after" else T0 + 1.0
        await settle_at(store, clock, r, created, T0 + (20.0 if name == "updated" else 2.0))
        events[name] = r
    clock[0] = T0 + 1.0
    events["pending"] = result("o-1", status="pending")
    assert await store.enqueue(events["pending"])
    clock[0] = time.time()

    filters = {name: PURGE_FILTERS[name] for name in given}
    purged = await store.purge(before=T0 + 10.0, **filters)

    # A differing event goes only when its field is not among the filters given.
    expected = {"match", *(name for name in DIFFERING if name not in given)}
    assert purged == len(expected)
    left = {name for name, r in events.items() if await store.get(r.event_id) is not None}
    assert left == set(events) - expected
    if len(given) == len(PURGE_FILTERS):
        assert left == {*DIFFERING, "updated", "pending"}


async def test_a_filtered_purge_walks_past_the_events_it_keeps_in_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of two, and events that share their update times: a walk that resumed at the wrong
    # place would skip events or never end.
    module = sys.modules[type(store).__module__]
    for name in ("PURGE_BATCH", "_PURGE_BATCH"):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, 2)
    clock = patch_clock(store, monkeypatch)
    times = [2.0] * 7 + [3.0] * 6 + [4.0]
    shop: list[str] = []
    other: list[str] = []
    for i, done in enumerate(times):
        r = result(f"o-{i}", account="shop" if i % 3 == 0 else "other")
        await settle_at(store, clock, r, T0 + 1.0, T0 + done)
        (shop if r.account == "shop" else other).append(r.event_id)
    clock[0] = time.time()
    assert await store.purge(before=T0 + 10.0, account="shop") == len(shop)
    assert [i for i in shop if await store.get(i) is not None] == []
    assert [i for i in other if await store.get(i) is None] == []
    # Everything matches now; the bound is exclusive, and falls on a run of ties.
    assert await store.purge(before=T0 + 3.0, provider="examplepay") == 4  # the others at T0 + 2
    assert len(await store.find()) == 5


def test_lease_tokens_differ_within_a_process_and_after_a_fork() -> None:
    import os

    from paynotify._stores.tokens import new_token

    tokens = {new_token() for _ in range(10_000)}
    assert len(tokens) == 10_000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one token and leave at once
        os.write(write, new_token().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child[:24] != next(iter(tokens))[:24]  # its own random prefix, not a copy of ours


# -- the state machine, walked on every backend ---------------------------------------------------
# Written out here by hand, not derived from paynotify._stores.base: a change to the table there
# must be made here too, on purpose.

S = EventState
EXPIRED = "expired"
"""The extra row: an event IN_FLIGHT whose lease ran out with nobody taking it over."""
Row = EventState | str
ROWS: list[Row] = [*EventState, EXPIRED]
OPERATIONS = ("claim", "acquire", "retry", "replay", "record_rejected", "complete", "complete_foreign",
              "release", "release_foreign", "reschedule", "reschedule_foreign", "dead_letter",
              "dead_letter_foreign")  # fmt: skip
"""`x` is done with the event's own lease token (the live or expired one, or a foreign token where
the event has none); `x_foreign` with a token that never held the lease."""
_ANY_BUT_DONE = {S.PENDING: S.DONE, S.RELEASED: S.DONE, S.DEAD: S.DONE, S.REJECTED: S.DONE,
                 S.IN_FLIGHT: S.DONE, S.DONE: None, S.UNHANDLED: S.DONE, EXPIRED: S.DONE}  # fmt: skip
_NEEDS_THE_LEASE: dict[Row, EventState | None] = dict.fromkeys(ROWS)
EXPECTED: dict[str, dict[Row, EventState | None]] = {
    # the state after the operation, or None where it must be refused and change nothing
    "claim": {S.PENDING: S.IN_FLIGHT, S.RELEASED: S.IN_FLIGHT, S.DEAD: S.IN_FLIGHT,
              S.REJECTED: S.IN_FLIGHT, S.IN_FLIGHT: None, S.DONE: None, S.UNHANDLED: None,
              EXPIRED: S.IN_FLIGHT},
    "acquire": {**dict.fromkeys(ROWS), S.PENDING: S.IN_FLIGHT, EXPIRED: S.IN_FLIGHT},
    "retry": {S.PENDING: S.PENDING, S.RELEASED: S.PENDING, S.DEAD: S.PENDING,
              S.REJECTED: None, S.IN_FLIGHT: None, S.DONE: None, S.UNHANDLED: None,
              EXPIRED: S.PENDING},
    "replay": {S.PENDING: S.PENDING, S.RELEASED: S.PENDING, S.DEAD: S.PENDING,
               S.REJECTED: S.PENDING, S.IN_FLIGHT: None, S.DONE: S.PENDING, S.UNHANDLED: None,
               EXPIRED: S.PENDING},
    "record_rejected": {**dict.fromkeys(ROWS), S.REJECTED: S.REJECTED},
    # complete leaves any state but done: the subscribers did run, whoever holds the lease now
    "complete": _ANY_BUT_DONE,
    "complete_foreign": _ANY_BUT_DONE,
    "release": {**_NEEDS_THE_LEASE, S.IN_FLIGHT: S.RELEASED, EXPIRED: S.RELEASED},
    "release_foreign": _NEEDS_THE_LEASE,
    "reschedule": {**_NEEDS_THE_LEASE, S.IN_FLIGHT: S.PENDING, EXPIRED: S.PENDING},
    "reschedule_foreign": _NEEDS_THE_LEASE,
    "dead_letter": {**_NEEDS_THE_LEASE, S.IN_FLIGHT: S.DEAD, EXPIRED: S.DEAD},
    "dead_letter_foreign": _NEEDS_THE_LEASE,
}  # fmt: skip
CLAIMED = {S.PENDING: ClaimState.NEW, S.RELEASED: ClaimState.NEW, S.DEAD: ClaimState.NEW,
           S.REJECTED: ClaimState.NEW, S.IN_FLIGHT: ClaimState.IN_FLIGHT, S.DONE: ClaimState.DONE,
           S.UNHANDLED: ClaimState.DONE, EXPIRED: ClaimState.NEW}  # fmt: skip
"""What `claim` answers in each row: an unhandled event is as settled as a done one."""


async def put_in(store: Store, row: Row) -> tuple[PaymentResult, str | None]:
    """An event brought into `row` through the store's own operations; (result, its lease token)."""
    r = result(f"walk-{row}")
    if row is S.PENDING:
        await store.enqueue(r)
    elif row is S.REJECTED:
        await store.record(r, S.REJECTED, reason="app_id is 'x'")
    elif row is S.UNHANDLED:
        event = UnhandledEvent(provider="examplepay", account="shop", event_type="PING", event_id=r.event_id)
        await store.record(event, S.UNHANDLED, reason=None)
    elif row is S.DEAD:
        await store.enqueue(r)
        (lease,) = await store.acquire(limit=1, lease_seconds=60)
        await store.dead_letter(r.event_id, lease.token, error="gave up")
    else:
        claim = await store.claim(r, lease_seconds=60)
        assert claim.token is not None
        if row is S.RELEASED:
            await store.release(r.event_id, claim.token, error="failed")
        elif row is S.DONE:
            await store.complete(r.event_id, claim.token)
        else:
            return r, claim.token  # IN_FLIGHT, or EXPIRED once the clock moves on
    assert (await stored(store, r.event_id))[0] is row
    return r, None


async def apply(store: Store, operation: str, r: PaymentResult, token: str | None) -> bool:
    """Run `operation` on the event; whether the store refused it (as far as it says)."""
    own = token or "not-the-lease"
    lease_token = "not-the-lease" if operation.endswith("_foreign") else own
    name = operation.removesuffix("_foreign")
    if name == "claim":
        return (await store.claim(r, lease_seconds=60)).state is not ClaimState.NEW
    if name == "acquire":
        return [lease.event.event_id for lease in await store.acquire(limit=10, lease_seconds=60)] != [
            r.event_id
        ]
    if name in ("retry", "replay"):
        return not await store.requeue(r.event_id, replay=name == "replay")
    if name == "record_rejected":
        return not await store.record(r, S.REJECTED, reason="merchant_id is 'y'")
    if name == "complete":
        await store.complete(r.event_id, lease_token)
    elif name == "release":
        await store.release(r.event_id, lease_token, error="released by the walk")
    elif name == "reschedule":
        await store.reschedule(r.event_id, lease_token, at=now_plus(0), error="rescheduled by the walk")
    else:
        await store.dead_letter(r.event_id, lease_token, error="dead-lettered by the walk")
    return False  # these say nothing: the state tells


def now_plus(seconds: float) -> float:
    return T0 + 1000.0 + seconds


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("row", ROWS, ids=str)
async def test_every_transition_of_the_state_machine(
    store: Store, row: Row, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = patch_clock(store, monkeypatch)
    r, token = await put_in(store, S.IN_FLIGHT if row == EXPIRED else row)
    if row == EXPIRED:
        clock[0] = T0 + 120.0  # the 60 s lease has run out
    else:
        clock[0] = T0 + 30.0  # a live lease is still live
    before = await store.get(r.event_id)
    assert before is not None
    if operation == "claim":
        assert (await store.claim(r, lease_seconds=60)).state is CLAIMED[row]
        refused = CLAIMED[row] is not ClaimState.NEW
    else:
        refused = await apply(store, operation, r, token)
    after = await store.get(r.event_id)
    assert after is not None
    expected = EXPECTED[operation][row]
    if expected is None:
        assert refused or operation not in ("claim", "acquire", "retry", "replay", "record_rejected")
        assert (after.state, after.attempts, after.last_error, after.done_subscribers) == (
            before.state,
            before.attempts,
            before.last_error,
            before.done_subscribers,
        )
    else:
        assert not refused
        assert after.state is expected
    if operation in ("claim", "acquire") and expected is not None:
        assert after.attempts == before.attempts + 1
    if operation == "retry" and row is S.DEAD:
        assert after.attempts == 0  # a requeued dead letter gets a fresh attempt budget
    if operation == "record_rejected" and expected is not None:
        assert after.last_error == "merchant_id is 'y'"
    if operation in ("release", "reschedule", "dead_letter") and expected is not None:
        assert after.last_error is not None
        assert "by the walk" in after.last_error


async def test_complete_records_the_last_subscribers_with_the_ones_before(store: Store) -> None:
    r = result()
    claim = await store.claim(r, lease_seconds=60)
    assert claim.token is not None
    await store.subscriber_done(r.event_id, claim.token, "first")
    await store.complete(r.event_id, claim.token, done=["second", "first"])
    assert (await stored(store, r.event_id))[2] == {"first", "second"}
    fresh = result("o-2")
    claim = await store.claim(fresh, lease_seconds=60)
    assert claim.token is not None
    await store.complete(fresh.event_id, claim.token, done=["only"])
    assert (await stored(store, fresh.event_id))[2] == {"only"}


async def test_unhandled_events_keep_their_content_and_count_by_state(store: Store) -> None:
    event = UnhandledEvent(
        provider="wechatpay-v3", account="shop", event_type="PAYSCORE.USER_CONFIRM", event_id="u-1",
        raw={"out_order_no": "1234323JKHDFE1243252", "state": "CREATED"},
    )  # fmt: skip
    assert await store.record(event, S.UNHANDLED, reason=None)
    assert not await store.record(event, S.UNHANDLED, reason=None)  # a resend changes nothing
    found = await store.get("u-1")
    assert found is not None
    assert (found.state, found.kind, found.status) == (S.UNHANDLED, "unhandled", "PAYSCORE.USER_CONFIRM")
    assert found.unhandled() == event
    await store.enqueue(result())
    assert await store.count() == {S.UNHANDLED: 1, S.PENDING: 1}
    assert [e.event_id for e in await store.find(states=[S.UNHANDLED])] == ["u-1"]


async def test_oldest_due_is_the_longest_waiting_pending_event(store: Store) -> None:
    assert await store.oldest_due() is None
    first, second = result("o-1"), result("o-2")
    await store.enqueue(first)
    t = time.time()
    await asyncio.sleep(0.01)
    await store.enqueue(second)
    due = await store.oldest_due()
    assert due is not None
    assert due <= t
    (lease,) = await store.acquire(limit=1, lease_seconds=60)  # the first, now in flight
    assert lease.event.event_id == first.event_id
    later = await store.oldest_due()
    assert later is not None
    assert later > t
