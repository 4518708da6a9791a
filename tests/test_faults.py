"""Bounded under faults: a store that stops answering (a network partition, through a TCP proxy the
test controls) gets the provider's failure reply within the store's deadline, and the store works
again when the network does; a burst beyond a store's connection pool waits instead of failing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from _store_backends import isolated_url, require
from conftest import APP_ID, SECRET, example_notify
from test_delivery import request
from test_multiprocess import CuttableProxy, through

from paynotify import EventState, Notifier, PaymentResult


class PartitionableProxy(CuttableProxy):
    """Also a partition: connections stay open and new ones are accepted, but nothing gets through,
    as when a network path drops packets (nothing is refused, so nothing fails fast)."""

    partitioned = False

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while PartitionableProxy.partitioned:  # noqa: ASYNC110 - a flag the test flips
                    await asyncio.sleep(0.01)  # hold the bytes, as a dead link would
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


def with_option(url: str, option: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{option}"


@pytest.fixture
def partition() -> object:
    PartitionableProxy.partitioned = False
    yield PartitionableProxy
    PartitionableProxy.partitioned = False


@pytest.mark.parametrize("backend", ["postgresql", "redis"])
async def test_a_partition_gets_the_failure_reply_within_the_deadline_then_recovers(
    backend: str, tmp_path: Path, partition: type[PartitionableProxy]
) -> None:
    url = isolated_url(backend, tmp_path)
    target = require(backend)
    from urllib.parse import urlsplit

    parts = urlsplit(target)
    proxy = partition(parts.hostname or "127.0.0.1", parts.port or 0)
    await proxy.start()
    # A claim cut off by the deadline may still have reached the database: that event then waits for
    # its lease (2 s here, 60 by default) before a resend takes it. Nothing is lost either way.
    n = Notifier(with_option(through(url, proxy.port), "timeout=0.5"), lease_seconds=2)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    seen: list[PaymentResult] = []
    n.subscribe(seen.append)
    try:
        assert (await n.handle("shop", request(example_notify("before")))).body == b"OK"
        partition.partitioned = True
        started = time.monotonic()
        reply = await n.handle("shop", request(example_notify("during")))
        elapsed = time.monotonic() - started
        assert reply.body == b"RETRY"  # nothing acknowledged: the provider resends
        assert elapsed < 2.0, f"hung {elapsed:.1f} s past a 0.5 s deadline"
        partition.partitioned = False
        assert (await n.handle("shop", request(example_notify("after")))).body == b"OK"  # the pool is back
        deadline = time.monotonic() + 10
        while (await n.handle("shop", request(example_notify("during")))).body != b"OK":  # resends
            assert time.monotonic() < deadline, "the notification cut off by the partition was not delivered"
            await asyncio.sleep(0.2)
        assert sorted(r.order_id for r in seen) == ["after", "before", "during"]
    finally:
        partition.partitioned = False
        await n.aclose()
        await proxy.cut()


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql", "redis"])
async def test_a_burst_of_500_beyond_the_pool_is_acknowledged_once_each(backend: str, tmp_path: Path) -> None:
    url = isolated_url(backend, tmp_path)
    if backend == "redis":
        url = with_option(url, "pool_max=10")  # 50 times fewer connections than callers
    elif backend == "postgresql":
        url = with_option(url, "pool_max=5")
    n = Notifier(url)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    seen: list[str] = []

    @n.subscribe
    async def ship(result: PaymentResult) -> None:
        seen.append(result.order_id)

    orders = [f"burst-{i}" for i in range(500)]
    await n.open()
    try:
        pending = set(orders)
        for _ in range(5):  # the provider's ordinary resends, for whatever was not acknowledged
            replies = await asyncio.gather(
                *(n.handle("shop", request(example_notify(o))) for o in sorted(pending))
            )
            pending -= {o for o, r in zip(sorted(pending), replies, strict=True) if r.body == b"OK"}
            if not pending:
                break
        assert pending == set()
        assert sorted(seen) == sorted(orders)  # none lost, none doubled
        counts = await n.store.count()
        assert counts.get(EventState.DONE) == 500
    finally:
        await n.aclose()
