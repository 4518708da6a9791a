"""Bounded under faults: a store that stops answering (a network partition, through a TCP proxy the
test controls) gets the provider's failure reply within the store's deadline, and the store works
again when the network does; a burst beyond a store's connection pool waits instead of failing."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from _store_backends import isolated_url, require
from conftest import APP_ID, SECRET, example_notify
from paynotify_examplepay import sign
from test_delivery import PingProvider, PingSettings, request
from test_multiprocess import CuttableProxy, through

from paynotify import (
    Account,
    Delivery,
    EventState,
    InboundRequest,
    InvalidContent,
    Notifier,
    PaymentResult,
    Registry,
    Reply,
    StoreError,
    UnhandledEvent,
    VerificationError,
    make_event_id,
)


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


_LEASE = 1.0
"""The burst's lease: short, so that a lease left by a claim cut off by the store's deadline (the
statement may commit after its caller gave up, and no token came back to hand it back with) has
expired by the provider's next resend, as it has in production (leases of a minute, resends after
minutes)."""


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql", "redis"])
async def test_a_burst_of_500_beyond_the_pool_is_acknowledged_once_each(backend: str, tmp_path: Path) -> None:
    url = isolated_url(backend, tmp_path)
    if backend == "redis":
        url = with_option(url, "pool_max=10")  # 50 times fewer connections than callers
    elif backend == "postgresql":
        url = with_option(url, "pool_max=5")
    n = Notifier(url, lease_seconds=_LEASE)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    runs: list[tuple[str, int]] = []  # (order, the round of resends it ran in)
    resend = 0

    @n.subscribe
    async def ship(result: PaymentResult) -> None:
        runs.append((result.order_id, resend))

    orders = [f"burst-{i}" for i in range(500)]
    acknowledged_in: dict[str, int] = {}
    await n.open()
    try:
        pending = sorted(orders)
        # The burst, then the provider's resends of whatever was not acknowledged, each after the
        # leases it may have met have expired (a provider waits minutes); bounded.
        for resend in range(6):
            if resend:
                await asyncio.sleep(_LEASE)  # the provider's resend interval, not a synchronisation
            replies = await asyncio.gather(*(n.handle("shop", request(example_notify(o))) for o in pending))
            acknowledged_in.update(
                {o: resend for o, r in zip(pending, replies, strict=True) if r.body == b"OK"}
            )
            pending = [o for o in pending if o not in acknowledged_in]
            if not pending:
                break
        assert pending == []
        counts = await n.store.count()
        assert counts.get(EventState.DONE) == 500  # none lost
        ran: dict[str, list[int]] = {o: [] for o in orders}
        for order, round_ in runs:
            ran[order].append(round_)
        for o, rounds in ran.items():
            # None doubled: each reached the subscriber, at most once per request, never after the
            # request acknowledged; more than once only after a run answered with a failure (a
            # completion cut off by the deadline: the provider's resend runs it again, at least once).
            assert rounds, o
            assert len(rounds) == len(set(rounds)), (o, rounds)
            assert max(rounds) <= acknowledged_in[o], (o, rounds)
        # A resend of a completed event is acknowledged without running anything again (five at a
        # time: within the pool, so that no store deadline is met here).
        before = len(runs)
        resend = -1
        for i in range(0, 500, 5):
            replies = await asyncio.gather(
                *(n.handle("shop", request(example_notify(o))) for o in orders[i : i + 5])
            )
            assert [r.body for r in replies] == [b"OK"] * len(replies)
        assert len(runs) == before
    finally:
        await n.aclose()


# -- hostile input ---------------------------------------------------------------------------------


async def test_a_stalled_upload_gets_408_after_the_body_deadline() -> None:
    n = Notifier("memory://", body_timeout=0.2)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    app = n.asgi()
    sent: list[MutableMapping[str, Any]] = []
    first = True

    async def receive() -> dict[str, object]:
        nonlocal first
        if first:  # a little of the body, then nothing: a client that stalls mid-upload
            first = False
            return {"type": "http.request", "body": b'{"order', "more_body": True}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/shop/notify", "headers": [], "query_string": b""}
    started = time.monotonic()
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    assert time.monotonic() - started < 1.0
    assert sent[0]["status"] == 408


class StrictProvider(PingProvider):
    """Verifies an HMAC, then finds a field out of shape: InvalidContent, with the verified fields."""

    name = "strict"

    def parse(self, request: InboundRequest, account: Account[PingSettings]) -> UnhandledEvent:
        if not hmac.compare_digest(request.headers.get("x-signature", ""), sign(request.body, SECRET)):
            raise VerificationError("bad signature")
        fields = json.loads(request.body)
        raise InvalidContent("total_amount '-1' is not a decimal with two places", raw=fields)


async def test_verified_content_out_of_shape_is_refused_and_recorded_as_rejected() -> None:
    n = Notifier("memory://", registry=Registry(group=None))
    n.registry.register(StrictProvider)
    n.add_account("shop", "strict")
    headers, body = example_notify("o-9", amount="-1")
    reply = await n.handle("shop", InboundRequest("POST", "notify", headers, b"", body))
    assert reply.body == b"OK"  # on record, so acknowledged: a resend would be refused the same way
    (event,) = await n.store.find(states=[EventState.REJECTED])
    assert event.last_error is not None
    assert "total_amount '-1'" in event.last_error
    assert event.unhandled().raw["amount"] == "-1"
    assert not await n.redeliver(event.event_id, replay=True)  # nothing a subscriber could take


async def test_verified_content_out_of_shape_is_not_acknowledged_while_the_store_is_down() -> None:
    n = Notifier("memory://", registry=Registry(group=None))
    n.registry.register(StrictProvider)
    n.add_account("shop", "strict")

    async def down(*args: object, **kwargs: object) -> None:
        raise StoreError("store unreachable")

    n.store.record = down  # type: ignore[method-assign,assignment]
    headers, body = example_notify("o-9", amount="-1")
    reply = await n.handle("shop", InboundRequest("POST", "notify", headers, b"", body))
    assert reply.body == b"RETRY"  # not on record, so the provider must resend


async def test_content_no_store_can_hold_gets_the_malformed_reply(tmp_path: Path) -> None:
    n = Notifier(f"sqlite:///{tmp_path / 'e.db'}", registry=Registry(group=None))
    n.registry.register(SurrogateProvider)
    n.add_account("shop", "surrogate")
    reply = await n.handle("shop", InboundRequest("POST", "notify"))  # the pipeline did not raise
    assert reply.body == b"MalformedNotification: content cannot be stored"
    assert await n.store.find() == []
    await n.aclose()


class SurrogateProvider(PingProvider):
    name = "surrogate"

    def parse(self, request: InboundRequest, account: Account[PingSettings]) -> PaymentResult:  # type: ignore[override]
        return PaymentResult(
            provider=self.name, account=account.name, kind="payment", status="succeeded",
            provider_status="SUCCESS", order_id="o-\ud800", event_id="e-surrogate",
        )  # fmt: skip

    def nack(self, error: Exception) -> Reply:
        return Reply.text(f"{type(error).__name__}: {getattr(error, 'message', error)}", 400)


class RepartitioningProvider(PingProvider):
    """Like an attacker re-cutting genuine signed bytes: a body ending in "!" is the malformed copy
    of the genuine event (the same event id), any other body the genuine notification."""

    name = "repartitioned"

    def parse(self, request: InboundRequest, account: Account[PingSettings]) -> PaymentResult:  # type: ignore[override]
        event_id = make_event_id(account.name, "payment", "o-1", None, "PAID")
        if request.body.endswith(b"!"):
            raise InvalidContent(
                "total_amount missing for a paid status", raw={"out_trade_no": "o-1"}, event_id=event_id
            )
        return PaymentResult(
            provider=self.name, account=account.name, kind="payment", status="succeeded",
            provider_status="PAID", order_id="o-1", amount="8.88", event_id=event_id,
        )  # fmt: skip


@pytest.mark.parametrize("delivery", ["inline", "queued"])
async def test_a_malformed_copy_never_blocks_the_genuine_notification(
    delivery: Delivery, tmp_path: Path
) -> None:
    n = Notifier(f"sqlite:///{tmp_path / 'e.db'}", delivery=delivery, registry=Registry(group=None))
    n.registry.register(RepartitioningProvider)
    n.add_account("shop", "repartitioned")
    seen: list[str] = []
    n.subscribe(lambda r: seen.append(r.order_id), name="ship")
    async with n:
        assert (await n.handle("shop", InboundRequest("POST", "notify", {}, b"", b"crafted!"))).body == b"OK"
        assert (await n.handle("shop", InboundRequest("POST", "notify", {}, b"", b"genuine"))).body == b"OK"
        deadline = time.monotonic() + 5
        while not seen:
            assert time.monotonic() < deadline, "the genuine payment was not delivered"
            await asyncio.sleep(0.02)
        (invalid,) = await n.store.find(states=[EventState.REJECTED])
        assert invalid.unhandled().raw["paynotify_event_id"] == make_event_id(
            "shop", "payment", "o-1", None, "PAID"
        )
    assert seen == ["o-1"]
