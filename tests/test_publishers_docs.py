"""The consumer examples in docs/publishers.md, run as written against the real brokers (only the
server address, the names and `ship` are the test's), fed by the publishers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from _brokers import NatsTarget, RabbitMQTarget, RedisTarget, require
from test_publishers import RESULT

from paynotify import PaymentResult, Status
from paynotify.publishers import Publisher, PublishError

PAGE = Path(__file__).parent.parent / "docs" / "publishers.md"


def example(client_import: str) -> str:
    """The consumer block of the page that imports `client_import`."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)
    (block,) = [str(b) for b in blocks if "asyncio.run(main())" in b and client_import in b]
    return block.replace("asyncio.run(main())", "")


def results() -> list[PaymentResult]:
    def event(i: int, **update: Any) -> PaymentResult:
        return RESULT.model_copy(update={"order_id": f"order-{i}", "event_id": f"{i:032x}", **update})

    pending = event(3, status=Status.PENDING)
    return [event(1), event(2), pending, event(1)]  # the last: published again (after a failed record)


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "the consumer did not get there in time"
        await asyncio.sleep(0.05)


async def run_consumer(code: str, namespace: dict[str, Any]) -> asyncio.Task[None]:
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 - the page's own example
    return asyncio.create_task(namespace["main"]())


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def publish_all(publisher: Publisher[Any], items: list[PaymentResult]) -> None:
    for item in items:
        await publisher(item)
    await publisher.aclose()


@pytest.fixture
def shipped() -> tuple[list[tuple[str, Decimal | None, str]], Callable[..., Awaitable[None]]]:
    calls: list[tuple[str, Decimal | None, str]] = []

    async def ship(order_id: str, amount: Decimal | None, *, idempotency_key: str) -> None:
        calls.append((order_id, amount, idempotency_key))

    return calls, ship


async def test_the_nats_consumer(shipped: Any) -> None:
    calls, ship = shipped
    t = NatsTarget(require("nats"))
    await t.create()
    code = (
        example("import nats")
        .replace("nats://127.0.0.1:4222", t.url)
        .replace('"PAYMENTS"', f'"{t.stream}"')
        .replace('"payments.*.*.payment.succeeded"', f'"{t.prefix}.*.*.payment.succeeded"')
    )
    task = None
    try:
        await publish_all(t.publisher(), results())
        task = await run_consumer(code, {"ship": ship})

        async def two_shipped() -> bool:
            return len(calls) == 2

        await until(two_shipped)
        await asyncio.sleep(0.3)
    finally:
        await stop(task)
        await t.delete()
    assert [c[0] for c in calls] == ["order-1", "order-2"]  # the pending one is not subscribed to
    assert calls[0] == ("order-1", Decimal("88.80"), f"{1:032x}")


async def test_the_rabbitmq_consumer_handles_a_second_copy_once(tmp_path: Path) -> None:
    t = RabbitMQTarget(require("rabbitmq"))
    queue = f"{t.queue}_shipping"
    code = (
        example("import aio_pika")
        .replace("amqp://guest:guest@127.0.0.1/", t.url)
        .replace('declare_exchange("payments"', f'declare_exchange("{t.exchange}"')
        .replace('declare_queue("shipping"', f'declare_queue("{queue}"')
        .replace('"shipping.db"', repr(str(tmp_path / "shipping.db")))
    )
    namespace: dict[str, Any] = {}
    task = await run_consumer(code, namespace)
    publisher = t.publisher(timeout=1.0)
    try:
        deadline = time.monotonic() + 10
        while True:  # until the consumer has declared and bound its queue: before, nothing takes it
            try:
                await publisher(results()[0])
                break
            except PublishError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        # Not the pending one: no queue is bound for it, and a publish nothing takes raises.
        await publish_all(publisher, [r for r in results()[1:] if r.status is Status.SUCCEEDED])
        db: sqlite3.Connection = namespace["db"]

        async def two_shipped() -> bool:
            return bool(db.execute("SELECT count(*) FROM shipments").fetchone()[0] == 2)

        await until(two_shipped)
        await asyncio.sleep(0.5)  # the second copy of order-1 is the last message
        await stop(task)
        shipments = db.execute("SELECT order_id, amount FROM shipments ORDER BY order_id").fetchall()
        handled = db.execute("SELECT count(*) FROM handled").fetchone()[0]
        db.close()
        async with await aio_pika.connect(t.url) as connection:
            channel = await connection.channel()
            left = (await channel.declare_queue(queue, passive=True)).declaration_result.message_count
    finally:
        await stop(task)
        async with await aio_pika.connect(t.url) as connection:
            await (await connection.channel()).queue_delete(queue)
        await t.delete()
    # Three messages, all acknowledged (an unacknowledged one would be back in the queue), two
    # shipments: the second copy of order-1 was recognised by its message_id.
    assert left == 0
    assert handled == 2
    assert shipments == [("order-1", "88.80"), ("order-2", "88.80")]


async def test_the_redis_consumer(shipped: Any) -> None:
    calls, ship = shipped
    t = RedisTarget(require("redis"))
    code = example("from redis.asyncio").replace("redis://127.0.0.1:6379/0", t.url)
    code = code.replace('"payments"', f'"{t.stream}"')
    task = None
    try:
        await publish_all(t.publisher(), results())
        assert len(await t.received()) == 3  # the second copy added nothing
        task = await run_consumer(code, {"ship": ship})

        async def two_shipped() -> bool:
            return len(calls) == 2

        await until(two_shipped)
        await asyncio.sleep(0.3)
    finally:
        await stop(task)
        await t.delete()
    assert [c[0] for c in calls] == ["order-1", "order-2"]  # is_paid skips the pending one
