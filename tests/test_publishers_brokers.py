"""Publishers against the real brokers, end to end: genuinely signed notifications through the ASGI
app, a Notifier with a publisher among its subscribers, and what a consumer receives.

Exactly once to consumers means: the broker drops a second copy (NATS by Nats-Msg-Id, Redis by the
de-duplication key) or, for RabbitMQ, which has no de-duplication, the consumer does by message_id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from _brokers import (
    BROKERS,
    CutProxy,
    NatsTarget,
    OwnServer,
    RabbitMQTarget,
    Received,
    RedisTarget,
    Target,
    created,
    require,
    target,
)
from conftest import APP_ID, SECRET, example_notify

from paynotify import Attempt, EventState, InboundRequest, MemoryStore, Notifier, PaymentResult, StoreError
from paynotify.publishers import Publisher, PublishError, RabbitMQPublisher, decode_message, message_schema

EVERY_BROKER = pytest.mark.parametrize("broker", BROKERS)

Notify = tuple[dict[str, str], bytes]


class RecordFailsOnce(MemoryStore):
    """A store whose first `complete` fails: the process died after the publish, before the record."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def complete(
        self, event_id: str, token: str, *, done: Sequence[str] = (), attempt: Attempt | None = None
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("connection lost while recording")
        await super().complete(event_id, token, done=done, attempt=attempt)


def make_notifier(store: Any = "memory://", **options: Any) -> Notifier:
    n = Notifier(store, **options)
    n.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    return n


@pytest.fixture
async def shared(broker: str) -> AsyncIterator[Target]:
    async with created(target(broker)) as t:
        yield t


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Notifier], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(n: Notifier) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://paynotify.test")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


async def post(client: httpx.AsyncClient, notify: Notify) -> str:
    headers, body = notify
    return (await client.post("/shop/notify", content=body, headers=headers)).text


async def resend_until_acknowledged(client: httpx.AsyncClient, pending: list[Notify]) -> int:
    """What a provider does: resend every unacknowledged notification, in concurrent batches."""
    sent = 0
    for _ in range(40):
        if not pending:
            return sent
        replies: list[str] = []
        for i in range(0, len(pending), 50):
            replies += await asyncio.gather(*(post(client, n) for n in pending[i : i + 50]))
        sent += len(pending)
        pending[:] = [n for n, reply in zip(pending, replies, strict=True) if reply != "OK"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(pending)} notifications never acknowledged")


def consume_once(messages: list[Received]) -> list[Received]:
    """The consumer-side de-duplication RabbitMQ needs (docs/publishers.md): skip a message_id seen."""
    seen: set[str] = set()
    handled = []
    for message in messages:
        if message.event_id not in seen:
            seen.add(message.event_id)
            handled.append(message)
    return handled


# -- one event ---------------------------------------------------------------------------------


@EVERY_BROKER
async def test_a_notification_reaches_the_broker_once_in_the_message_format(
    broker: str, shared: Target, client_for: Callable[[Notifier], httpx.AsyncClient]
) -> None:
    n = make_notifier()
    publisher = shared.publisher()
    delivered: list[PaymentResult] = []
    n.subscribe(delivered.append)
    n.subscribe(publisher)
    client = client_for(n)
    await publisher.open()
    try:
        first = example_notify("order-1")
        assert await post(client, first) == "OK"
        # The provider's duplicates, sequential and at once: acknowledged, not published again.
        assert await post(client, first) == "OK"
        second = example_notify("order-2", amount="0.10")
        replies = await asyncio.gather(*(post(client, second) for _ in range(5)))
        assert "OK" in replies
        assert set(replies) <= {"OK", "RETRY"}  # RETRY: the first copy was still in flight
        assert await post(client, second) == "OK"
    finally:
        await publisher.aclose()

    received = await shared.received()
    assert [m.event_id for m in received] == [r.event_id for r in delivered]
    assert len(received) == 2
    for message, result in zip(received, delivered, strict=True):
        assert {k: message.headers[k] for k in ("event_id", "provider", "account", "kind", "status")} == {
            "event_id": result.event_id,
            "provider": "examplepay",
            "account": "shop",
            "kind": "payment",
            "status": "succeeded",
        }
        assert message.headers["schema_version"] == "1"
        assert message.persistent
        if isinstance(shared, RedisTarget):
            assert message.where == shared.stream
        else:
            assert message.where.endswith(".examplepay.shop.payment.succeeded")  # the default template
        assert decode_message(message.body) == result
        jsonschema.validate(json.loads(message.body), message_schema())
    assert json.loads(received[1].body)["result"]["amount"] == "0.10"


@EVERY_BROKER
async def test_it_connects_on_the_first_publish_and_again_after_aclose(broker: str, shared: Target) -> None:
    n = make_notifier()
    publisher = shared.publisher()
    n.subscribe(publisher)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=n.asgi()), base_url="http://t")
    async with client:
        assert await post(client, example_notify("order-1")) == "OK"  # never opened
        await publisher.aclose()
        assert await post(client, example_notify("order-2")) == "OK"
        await publisher.aclose()
    assert len(await shared.received()) == 2


# -- a crash between publishing and recording ---------------------------------------------------


@EVERY_BROKER
@pytest.mark.parametrize("retry", ["redeliver", "provider resends"])
async def test_a_crash_after_the_publish_does_not_reach_consumers_twice(
    broker: str, retry: str, shared: Target, client_for: Callable[[Notifier], httpx.AsyncClient]
) -> None:
    store = RecordFailsOnce()
    n = make_notifier(store)
    publisher = shared.publisher()
    n.subscribe(publisher)
    client = client_for(n)
    notify = example_notify("order-1")
    await publisher.open()
    try:
        assert await post(client, notify) == "RETRY"  # published, then the record failed
        assert len(await shared.received()) == 1
        if retry == "redeliver":
            (event,) = await store.find()
            assert await n.redeliver(event.event_id)
        else:
            assert await post(client, notify) == "OK"
    finally:
        await publisher.aclose()

    received = await shared.received()
    if broker == "rabbitmq":
        # Published twice (RabbitMQ cannot tell), handled once by the consumer's de-duplication.
        assert len(received) == 2
        assert received[0].event_id == received[1].event_id
    else:
        assert len(received) == 1  # the broker dropped the second copy
    assert len(consume_once(received)) == 1


# -- a broker outage ---------------------------------------------------------------------------


async def outage(broker: str, tmp_path: Path) -> tuple[Any, Target, dict[str, Any]]:
    """A broker the test can stop: (the switch, the target, publisher options)."""
    if broker == "rabbitmq":
        proxy = CutProxy(require("rabbitmq"))
        await proxy.start()
        return proxy, target("rabbitmq"), {"url": proxy.url}
    server = OwnServer(broker, tmp_path / broker)
    await server.start()
    return server, target(broker, server.url), {}


@EVERY_BROKER
@pytest.mark.parametrize("delivery", ["inline", "queued"])
async def test_a_broker_outage_mid_run_loses_nothing(
    broker: str, delivery: str, tmp_path: Path, client_for: Callable[[Notifier], httpx.AsyncClient]
) -> None:
    switch, t, options = await outage(broker, tmp_path)
    queued = delivery == "queued"
    n = make_notifier(delivery=delivery, backoff_seconds=0.05, max_backoff_seconds=0.5, max_attempts=100)
    publisher = t.publisher(timeout=1.0, **options)
    n.subscribe(publisher)
    client = client_for(n)
    notifies = [example_notify(f"order-{i}") for i in range(30)]
    replies: list[str] = []
    slowest_failure = 0.0
    try:
        await t.create()
        await n.open()
        await publisher.open()
        for i, notify in enumerate(notifies):
            if i == 10:
                await switch.stop()
            if i == 20:
                await switch.start()
            started = time.monotonic()
            replies.append(await post(client, notify))
            if replies[-1] != "OK":
                slowest_failure = max(slowest_failure, time.monotonic() - started)
        if queued:
            assert replies == ["OK"] * 30  # recorded at once; the dispatcher backs off meanwhile
            deadline = time.monotonic() + 20
            while any(e.state is not EventState.DONE for e in await n.store.find(limit=100)):
                assert time.monotonic() < deadline, "queued events not delivered after the outage"
                await asyncio.sleep(0.1)
        else:
            assert replies[:10] == ["OK"] * 10
            assert replies[10:20] == ["RETRY"] * 10  # the publish raised: the provider is asked again
            assert slowest_failure < publisher.timeout + 0.5
            pending = [x for x, reply in zip(notifies, replies, strict=True) if reply != "OK"]
            await resend_until_acknowledged(client, pending)
        received = await t.received()
    finally:
        await publisher.aclose()
        await n.aclose()
        await switch.stop()
        if broker == "rabbitmq":
            await t.delete()  # an own server goes with its data directory

    assert len(consume_once(received)) == 30
    if broker != "rabbitmq":
        assert len(received) == 30


# -- many events, other subscribers failing ----------------------------------------------------


@EVERY_BROKER
async def test_a_thousand_events_with_failing_neighbours_reach_consumers_exactly_once(
    broker: str, shared: Target, client_for: Callable[[Notifier], httpx.AsyncClient]
) -> None:
    n = make_notifier()
    rng = random.Random(20240528)
    failures = {"before": 0, "after": 0}

    def flaky(where: str) -> Callable[[PaymentResult], None]:
        def subscriber(result: PaymentResult) -> None:
            if rng.random() < 0.3:
                failures[where] += 1
                raise RuntimeError(f"{where}: crm timed out")

        subscriber.__qualname__ = f"flaky_{where}"
        return subscriber

    publisher = shared.publisher()
    n.subscribe(flaky("before"))
    n.subscribe(publisher)
    n.subscribe(flaky("after"))  # its failures make retries that must not publish again
    client = client_for(n)
    pending = [example_notify(f"order-{i}") for i in range(1000)]
    await publisher.open()
    started = time.monotonic()
    try:
        sent = await resend_until_acknowledged(client, pending)
    finally:
        await publisher.aclose()
    elapsed = time.monotonic() - started

    received = await shared.received()
    assert len(received) == 1000
    assert len({m.event_id for m in received}) == 1000
    assert failures["before"] > 200
    assert failures["after"] > 200
    logging.getLogger(__name__).info("%d notifications sent in %.2f s", sent, elapsed)


# -- nowhere to land ---------------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["nats", "rabbitmq"])  # a Redis stream takes every XADD
async def test_a_message_no_one_takes_raises(broker: str, shared: Target) -> None:
    from test_publishers import RESULT

    publisher: Publisher[Any]
    if isinstance(shared, NatsTarget):
        publisher = type(shared.publisher())(shared.url, subject="pntest_nobody.{kind}", timeout=1.0)
    else:
        assert isinstance(shared, RabbitMQTarget)
        unbound = RabbitMQTarget(shared.url)
        await unbound.create(bind=False)
        try:
            publisher = unbound.publisher(timeout=1.0)
            with pytest.raises(PublishError, match=RESULT.event_id):  # returned unroutable
                await publisher(RESULT)
            await publisher.aclose()
        finally:
            await unbound.delete()
        publisher = RabbitMQTarget(shared.url).publisher(timeout=1.0)  # no such exchange
        with pytest.raises(PublishError, match="could not connect"):
            await publisher.open()
    with pytest.raises(PublishError, match=RESULT.event_id):
        await publisher(RESULT)
    await publisher.aclose()


@pytest.mark.parametrize("broker", ["rabbitmq"])
async def test_rabbitmq_through_the_default_exchange_to_a_queue(broker: str, shared: Target) -> None:
    from test_publishers import RESULT

    assert isinstance(shared, RabbitMQTarget)
    publisher = RabbitMQPublisher(shared.url, exchange="", routing_key=shared.queue)
    assert publisher.name == f"paynotify.publishers.RabbitMQPublisher(:{shared.queue})"
    await publisher(RESULT)
    await publisher.aclose()
    (message,) = await shared.received()
    assert message.event_id == RESULT.event_id
    assert message.where == shared.queue


@pytest.mark.parametrize("broker", ["rabbitmq"])
async def test_refused_credentials_fail_the_publish_without_showing_them(broker: str, shared: Target) -> None:
    from test_publishers import RESULT

    assert isinstance(shared, RabbitMQTarget)
    publisher = RabbitMQPublisher(
        shared.url.replace("guest:guest@", "guest:not-the-password-42@"), exchange=shared.exchange
    )
    with pytest.raises(PublishError) as caught:
        await publisher(RESULT)
    await publisher.aclose()
    assert "not-the-password-42" not in str(caught.value)
    assert "not-the-password-42" not in repr(publisher)


async def test_nats_warns_when_the_stream_forgets_message_ids_too_soon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = NatsTarget(require("nats"))
    await t.create(duplicate_window=120)
    try:
        publisher = t.publisher()
        with caplog.at_level(logging.WARNING, "paynotify.publishers"):
            await publisher.open()
        await publisher.aclose()
    finally:
        await t.delete()
    assert "de-duplicates for 120 s only" in caplog.text


@pytest.mark.parametrize("broker", ["redis"])
async def test_redis_forgets_an_event_after_the_dedup_ttl(broker: str, shared: Target) -> None:
    from redis.asyncio import Redis
    from test_publishers import RESULT

    assert isinstance(shared, RedisTarget)

    publisher = shared.publisher(dedup_ttl=1)
    await publisher(RESULT)
    await publisher(RESULT)
    client = Redis.from_url(shared.url)
    try:
        ttl = await client.pttl(f"{shared.stream}:dedup:{RESULT.event_id}")
    finally:
        await client.aclose()
    assert 0 < ttl <= 1000
    assert len(await shared.received()) == 1
    await asyncio.sleep(1.1)
    await publisher(RESULT)  # past the TTL: a replay an operator asked for is published again
    await publisher.aclose()
    assert len(await shared.received()) == 2


def test_a_publisher_is_used_on_one_event_loop_until_it_is_closed() -> None:
    from test_publishers import RESULT

    t = RedisTarget(require("redis"))
    publisher = t.publisher()
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(publisher(RESULT))
        with pytest.raises(PublishError, match="connected on another event loop"):
            second.run_until_complete(publisher(RESULT))
        with pytest.raises(RuntimeError, match="aclose"):
            second.run_until_complete(publisher.aclose())
        first.run_until_complete(publisher.aclose())
        second.run_until_complete(publisher(RESULT))  # closed: free to connect on another loop
        second.run_until_complete(publisher.aclose())
        assert len(second.run_until_complete(t.received())) == 1
    finally:
        second.run_until_complete(t.delete())
        first.close()
        second.close()


@EVERY_BROKER
async def test_the_notifier_opens_and_closes_its_publishers(shared: Target) -> None:
    # Connected when the Notifier opens (its lifespan), before any notification; closed with it.
    n = make_notifier()
    publisher = shared.publisher()
    n.subscribe(publisher)
    assert publisher._connection is None
    async with n:
        assert publisher._connection is not None
        headers, body = example_notify("lifecycle-1")
        assert (await n.handle("shop", InboundRequest("POST", "notify", headers, b"", body))).body == b"OK"
    assert publisher._connection is None
    assert len(await shared.received()) == 1
