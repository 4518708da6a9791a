"""Publishers: what handing a notification to a broker costs, against the broker client's own
publish loop with the same confirmation, in the same run.

    python -m bench.publishers [--n 500] [--rounds 5] [--brokers nats,rabbitmq,redis]
                               [--json bench/results/publishers.json]

Per broker (NATS JetStream on PAYNOTIFY_TEST_NATS_URL, RabbitMQ on PAYNOTIFY_TEST_RABBITMQ_URL, Redis
on PAYNOTIFY_TEST_REDIS_URL; the local defaults otherwise; a broker that does not answer is skipped),
in `--rounds` rounds, the contenders in turn, `--n` distinct events each, one at a time:

- bare: the client alone, waiting for the same confirmation: `js.publish` with `Nats-Msg-Id`;
  `exchange.publish` on a confirming channel, persistent; `XADD` of the same fields (without the
  publisher's de-duplication key, which is what it adds);
- publisher: `await publisher(result)` (encoding, template, deadline, de-duplication);
- pipeline + publisher, pipeline alone: WeChat Pay v2 notifications through the whole pipeline as
  ASGI (memory store) with the publisher, or a no-op async subscriber, as its one subscriber.

Reported: the median over rounds of microseconds per event; "publisher / bare" is the median of the
per-round ratios. Streams, exchanges and keys are the run's own and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench._common import asgi_batch, machine, new_loop, write_json
from bench._fixtures import XML, WeChatV2Keys, wechat_v2_bodies
from paynotify import Kind, Notifier, PaymentResult, Status, make_event_id
from paynotify.publishers import (
    NatsPublisher,
    Publisher,
    RabbitMQPublisher,
    RedisStreamPublisher,
    encode_message,
)

NATS_URL = os.environ.get("PAYNOTIFY_TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("PAYNOTIFY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("PAYNOTIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
Bare = Callable[[Sequence[PaymentResult]], Awaitable[None]]


def _results(n: int, tag: str) -> list[PaymentResult]:
    out = []
    for i in range(n):
        order = f"{tag}-{i}"
        out.append(PaymentResult(
            provider="wechatpay-v2", account="shop", kind=Kind.PAYMENT, status=Status.SUCCEEDED,
            provider_status="SUCCESS", order_id=order, amount="88.88", app_id="wx", merchant_id="m",
            event_id=make_event_id("shop", Kind.PAYMENT, order, None, "SUCCESS"),
        ))  # fmt: skip
    return out


async def _nats(stack: AsyncExitStack, tag: str) -> tuple[Publisher[Any], Bare]:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    stream, prefix = f"PN_BENCH_{tag}", f"pnbench_{tag}"
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"], duplicate_window=25 * 3600)

    async def cleanup() -> None:
        await js.delete_stream(stream)
        await nc.close()

    stack.push_async_callback(cleanup)

    async def bare(results: Sequence[PaymentResult]) -> None:
        for result in results:
            body = result.model_dump_json().encode()
            await js.publish(f"{prefix}.bare", body, headers={"Nats-Msg-Id": "bare-" + result.event_id})

    return NatsPublisher(NATS_URL, subject=prefix + ".{kind}.{status}", stream=stream), bare


async def _rabbitmq(stack: AsyncExitStack, tag: str) -> tuple[Publisher[Any], Bare]:
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel(publisher_confirms=True)
    name = f"pn_bench_{tag}"
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(name, durable=True)
    await queue.bind(exchange, "#")

    async def cleanup() -> None:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await connection.close()

    stack.push_async_callback(cleanup)

    async def bare(results: Sequence[PaymentResult]) -> None:
        for result in results:
            message = aio_pika.Message(
                result.model_dump_json().encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=result.event_id,
            )
            await exchange.publish(message, routing_key="payments.bare", mandatory=True)

    return RabbitMQPublisher(RABBITMQ_URL, exchange=name), bare


async def _redis(stack: AsyncExitStack, tag: str) -> tuple[Publisher[Any], Bare]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    prefix = f"pn_bench_{tag}"

    async def cleanup() -> None:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    stack.push_async_callback(cleanup)

    async def bare(results: Sequence[PaymentResult]) -> None:
        for result in results:
            message = encode_message(result)
            await client.xadd(f"{prefix}:bare", {**message.headers, "body": message.body})

    return RedisStreamPublisher(REDIS_URL, stream=f"{prefix}:payments"), bare


SETUPS = {"nats": _nats, "rabbitmq": _rabbitmq, "redis": _redis}


async def _per_event(n: int, run: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter_ns()
    await run()
    return (time.perf_counter_ns() - started) / n / 1000


async def _broker(name: str, args: argparse.Namespace, keys: WeChatV2Keys) -> dict[str, Any] | None:
    tag = secrets.token_hex(4)
    async with AsyncExitStack() as stack:
        try:
            publisher, bare = await SETUPS[name](stack, tag)
            await publisher.open()
        except Exception as exc:
            print(f"  {name}: skipped ({type(exc).__name__}: {exc})")
            return None
        stack.push_async_callback(publisher.aclose)

        async def nothing(result: PaymentResult) -> None:
            return None

        with_publisher, alone = Notifier("memory://"), Notifier("memory://")
        for notifier, subscriber in ((with_publisher, publisher), (alone, nothing)):
            notifier.add_account("shop", "wechatpay-v2", **keys.settings())
            notifier.subscribe(subscriber, name="bench")
        rows: dict[str, list[float]] = {"bare": [], "publisher": [], "pipeline + publisher": [],
                                        "pipeline alone": []}  # fmt: skip
        for r in range(args.rounds):
            direct = _results(args.n, f"{tag}-{r}")

            async def through_publisher(results: Sequence[PaymentResult] = direct) -> None:
                for result in results:
                    await publisher(result)

            async def through_client(results: Sequence[PaymentResult] = direct) -> None:
                await bare(results)

            rows["bare"].append(await _per_event(args.n, through_client))
            rows["publisher"].append(await _per_event(args.n, through_publisher))
            for label, notifier in (("pipeline + publisher", with_publisher), ("pipeline alone", alone)):
                # Order ids in WeChat's shape (1-32 of letters, digits, _-|*): others are refused.
                short = "pp" if "+" in label else "pa"
                bodies = wechat_v2_bodies(keys, args.n, f"{tag}-{r}-{short}")
                batch = asgi_batch(notifier.asgi(), "/shop/notify", [(XML, b) for b in bodies],
                                   lambda s, b: b"SUCCESS" in b)  # fmt: skip
                rows[label].append(await _per_event(args.n, batch))
        ratios = [p / b for p, b in zip(rows["publisher"], rows["bare"], strict=True)]
        added = [w - a for w, a in zip(rows["pipeline + publisher"], rows["pipeline alone"], strict=True)]
        summary = {label: statistics.median(values) for label, values in rows.items()}
        return {
            "median_us": summary,
            "rounds_us": rows,
            "publisher_over_bare": statistics.median(ratios),
            "publish_in_pipeline_us": statistics.median(added),
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    keys = WeChatV2Keys.generate("HMAC-SHA256")
    out: dict[str, Any] = {"machine": machine(), "n": args.n, "rounds": args.rounds, "brokers": {}}
    for name in args.brokers:
        print(f"  {name} ...", flush=True)
        result = await _broker(name, args, keys)
        if result is not None:
            out["brokers"][name] = result
    return out


def table(data: dict[str, Any]) -> str:
    lines = [
        "| broker | bare client (µs) | publisher (µs) | publisher / bare | pipeline alone (µs) "
        "| pipeline + publisher (µs) | publish in the pipeline (µs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, b in data["brokers"].items():
        m = b["median_us"]
        lines.append(
            f"| {name} | {m['bare']:.0f} | {m['publisher']:.0f} | {b['publisher_over_bare']:.2f} "
            f"| {m['pipeline alone']:.0f} | {m['pipeline + publisher']:.0f} "
            f"| {b['publish_in_pipeline_us']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--brokers", type=lambda s: s.split(","), default=list(SETUPS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    loop = new_loop()
    try:
        data = loop.run_until_complete(run(args))
    finally:
        loop.close()
    if args.json:
        write_json(args.json, data)
    print(table(data))


if __name__ == "__main__":
    main()
