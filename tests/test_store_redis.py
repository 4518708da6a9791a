"""Redis specifics: data model version, malformed records, outages and recovery, key safety.

The behaviour every store shares is in test_store_contract.py."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from _store_backends import drop, isolated_url
from test_store_contract import result

from paynotify import ClaimState, StoreError, open_store
from paynotify._stores.base import EventState, StoredEvent
from paynotify._stores.redis import RedisStore


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    url = isolated_url("redis", tmp_path)
    yield url
    await drop("redis", url)


def raw(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url.partition("?")[0], decode_responses=True)


async def test_refuses_a_newer_data_model(url: str) -> None:
    prefix = url.partition("?prefix=")[2]
    client = raw(url)
    await client.set(prefix + "schema", 99)
    await client.aclose()
    store = open_store(url)
    with pytest.raises(StoreError, match="upgrade paynotify"):
        await store.claim(result(), lease_seconds=60)
    await store.close()


async def test_a_malformed_record_is_a_clear_error(url: str) -> None:
    store = open_store(url)
    r = result()
    await store.claim(r, lease_seconds=60)
    client = raw(url)
    await client.hset(store.prefix + "e:" + r.event_id, "state", "exploded")  # type: ignore[attr-defined]
    await client.aclose()
    with pytest.raises(StoreError, match=f"event {r.event_id} is malformed"):
        await store.get(r.event_id)
    with pytest.raises(StoreError, match="malformed record"):
        await store.claim(r, lease_seconds=60)
    await store.close()


async def test_killed_connections_are_replaced(url: str) -> None:
    store = open_store(url)
    first = result("a")
    assert (await store.claim(first, lease_seconds=60)).state is ClaimState.NEW
    client = raw(url)
    await client.client_kill_filter(_type="normal", skipme=True)
    await client.aclose()
    outcomes: list[ClaimState | None] = []
    for order in ("b", "c"):
        try:
            outcomes.append((await store.claim(result(order), lease_seconds=60)).state)
        except StoreError:
            outcomes.append(None)  # at most one call may see the dead connection
    assert outcomes[-1] is ClaimState.NEW
    assert (await store.claim(first, lease_seconds=60)).state is ClaimState.IN_FLIGHT
    await store.close()


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_store(f"redis://:s3cret-pass@127.0.0.1:{port}/0")
    with pytest.raises(StoreError) as caught:
        await store.claim(result(), lease_seconds=60)
    assert "s3cret-pass" not in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)
    await store.close()


async def test_prefixes_isolate_and_order_ids_never_shape_keys(url: str, tmp_path: Path) -> None:
    other_url = isolated_url("redis", tmp_path)
    a, b = open_store(url), open_store(other_url)
    try:
        tricky = result("ord:1}{*\u8ba2\u5355", account="shop:o:x")
        claim = await a.claim(tricky, lease_seconds=60)
        assert claim.token
        await a.complete(tricky.event_id, claim.token)
        assert (await b.claim(tricky, lease_seconds=60)).state is ClaimState.NEW  # another prefix
        found = await a.find(account="shop:o:x", order_id="ord:1}{*\u8ba2\u5355")
        assert [e.event_id for e in found] == [tricky.event_id]
        assert await a.find(account="shop", order_id="o:x:ord:1}{*\u8ba2\u5355") == []
    finally:
        await a.close()
        await b.close()
        await drop("redis", other_url)


def test_url_options() -> None:
    store = RedisStore("redis://127.0.0.1:6379/2?prefix=shop1:&health_check_interval=10")
    assert store.prefix == "shop1:"
    assert RedisStore("redis://127.0.0.1/0").prefix == "paynotify:"
    with pytest.raises(Exception, match="prefix"):
        RedisStore("redis://127.0.0.1/0?prefix=")


async def test_find_by_a_rare_state_reads_that_state_not_every_event(url: str) -> None:
    store = RedisStore(url)
    for i in range(300):
        r = result(order_id=f"done-{i}")
        claim = await store.claim(r, lease_seconds=60)
        await store.complete(r.event_id, claim.token or "")
    dead = []
    for i in range(3):
        r = result(order_id=f"dead-{i}")
        assert await store.enqueue(r)
        (lease,) = await store.acquire(limit=1, lease_seconds=60)
        await store.dead_letter(r.event_id, lease.token, error="gave up")
        dead.append(r.event_id)
    fetched: list[int] = []
    fetch = store._fetch

    async def counting(ids: list[str]) -> list[StoredEvent]:
        fetched.append(len(ids))
        return await fetch(ids)

    store._fetch = counting  # type: ignore[method-assign]
    found = await store.find(states=[EventState.DEAD])
    assert [e.event_id for e in found] == dead[::-1]  # newest first
    assert sum(fetched) == 3, f"read {sum(fetched)} events to find 3"
    # Most events completed: the created index is the faster way, and still correct.
    assert len(await store.find(states=[EventState.DONE], limit=5)) == 5
    await store.close()
