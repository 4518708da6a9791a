"""Webhooks: what sending one event to an endpoint costs, against a bare httpx POST of the same body
to the same local sink, in the same run.

    python -m bench.webhooks [--n 500] [--rounds 5] [--json bench/results/webhooks.json]

The sink is a minimal HTTP/1.1 keep-alive server answering 204, in a process of its own on
127.0.0.1. In `--rounds` rounds, the contenders in turn, `--n` distinct events each, one at a time:

- bare: `await client.post(url, content=body)` with the message body encoded beforehand, on an
  `httpx.AsyncClient` (keep-alive);
- send: `await publisher.send(result)`: the message encoded, signed (Standard Webhooks, one
  secret), POSTed with the deadline, the answer read to its bound, breaker and stats updated;
- queued: `await publisher(result)` into a memory outbox, the endpoint's worker (concurrency 1)
  delivering; timed from the first enqueue until the outbox holds every event done.

Reported: the median over rounds of microseconds per event, and the median per-round ratio to bare.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import secrets
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench._common import machine, write_json
from paynotify import EventState, Kind, PaymentResult, Status, make_event_id
from paynotify.publishers import WebhookPublisher, encode_message

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _serve(sock: socket.socket) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _results(n: int, tag: str) -> list[PaymentResult]:
    return [
        PaymentResult(
            provider="wechatpay-v2",
            account="shop",
            kind=Kind.PAYMENT,
            status=Status.SUCCEEDED,
            provider_status="SUCCESS",
            order_id=f"{tag}-{i}",
            amount="88.88",
            app_id="wx",
            merchant_id="m",
            event_id=make_event_id("shop", Kind.PAYMENT, f"{tag}-{i}", None, "SUCCESS"),
        )
        for i in range(n)
    ]


async def _bare(url: str, results: list[PaymentResult]) -> float:
    bodies = [encode_message(r).body for r in results]
    async with httpx.AsyncClient() as client:
        await client.post(url, content=bodies[0], headers={"content-type": "application/json"})
        started = time.perf_counter()
        for body in bodies:
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 204
        return time.perf_counter() - started


async def _send(url: str, results: list[PaymentResult]) -> float:
    hook = WebhookPublisher(url, name="bench", secret=SECRET, delivery="inline")
    try:
        await hook.send(results[0])
        started = time.perf_counter()
        for result in results:
            attempt = await hook.send(result)
            assert attempt.ok, attempt.error
        return time.perf_counter() - started
    finally:
        await hook.aclose()


async def _queued(url: str, results: list[PaymentResult]) -> float:
    hook = WebhookPublisher(
        url, name="bench", secret=SECRET, outbox="memory://", concurrency=1, poll_seconds=0.001
    )
    await hook.open()
    try:
        assert hook.outbox is not None
        started = time.perf_counter()
        for result in results:
            await hook(result)
        while True:  # the worker's completions are store writes: polled, at a millisecond
            if (await hook.outbox.count()).get(EventState.DONE, 0) >= len(results):
                return time.perf_counter() - started
            await asyncio.sleep(0.001)
    finally:
        await hook.aclose()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sink = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    sink.start()
    sock.close()
    contenders = {"bare": _bare, "send": _send, "queued": _queued}
    per_event: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for r in range(args.rounds):
            for name, run in contenders.items():
                results = _results(args.n, f"{name}-{r}-{secrets.token_hex(3)}")
                seconds = asyncio.run(run(url, results))
                per_event[name].append(seconds / args.n * 1e6)
    finally:
        sink.terminate()
        sink.join()
    report: dict[str, Any] = {"machine": machine(), "n": args.n, "rounds": args.rounds, "us_per_event": {}}
    print(f"{'contender':<8} {'us/event':>9} {'/ bare':>7}")
    for name, values in per_event.items():
        ratio = statistics.median(v / b for v, b in zip(values, per_event["bare"], strict=True))
        median = statistics.median(values)
        report["us_per_event"][name] = {"median": median, "ratio_to_bare": ratio, "rounds": values}
        print(f"{name:<8} {median:>9.0f} {ratio:>7.2f}")
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
