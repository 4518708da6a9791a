"""What recording each delivery attempt costs: the pipeline with and without it, interleaved.

    python -m bench.attempts [--n 500] [--rounds 8] [--backends memory,sqlite,postgresql,redis]

Per backend, one Notifier (inline delivery, one async subscriber) takes `--n` new, distinct WeChat
Pay v2 notifications per round through `Notifier.handle`, rounds alternating between recording the
attempt (as shipped: in the completing write) and not recording it (the pipeline's `Attempt.of`
patched to give None, so `complete` gets `attempt=None`, the write of before). Then as many
`claim` + `complete` on the store alone, with and without an attempt. Prints microseconds per
notification, best and median of the rounds, for each. PostgreSQL and Redis are used when
reachable (a fresh schema / prefix, removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import paynotify._pipeline as pipeline
from bench._fixtures import XML, WeChatV2Keys, wechat_v2_bodies
from bench.stores import POSTGRES_URL, REDIS_URL, _drop_redis, _pg_execute, _result
from paynotify import Attempt, InboundRequest, Notifier, PaymentResult

_REAL_OF = Attempt.of


class _NoAttempt:
    """Stands in for `Attempt` in the pipeline: every `Attempt.of(...)` is None (recording off)."""

    @staticmethod
    def of(*args: Any, **kwargs: Any) -> None:
        return None


def _url(name: str, tmp: Path, tag: str) -> str:
    if name == "memory":
        return "memory://"
    if name == "sqlite":
        return f"sqlite:///{tmp / 'attempts.db'}"
    if name == "postgresql":
        return f"{POSTGRES_URL}?schema=bench_attempts_{tag}"
    return f"{REDIS_URL}?prefix=bench-attempts-{tag}:"


async def _timed(n: int, run: Callable[[], Awaitable[None]]) -> float:
    gc.collect()
    started = time.perf_counter_ns()
    await run()
    return (time.perf_counter_ns() - started) / n / 1000


async def _backend(name: str, tmp: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    tag = secrets.token_hex(4)
    keys = WeChatV2Keys.generate("HMAC-SHA256")
    notifier = Notifier(_url(name, tmp, tag))
    notifier.add_account("shop", "wechatpay-v2", **keys.settings())
    delivered: list[PaymentResult] = []

    @notifier.subscribe
    async def record(result: PaymentResult) -> None:
        delivered.append(result)

    timings: dict[str, list[float]] = {}
    try:
        await notifier.store.open()
        for r in range(args.rounds):
            for recording in (False, True) if r % 2 == 0 else (True, False):
                label = "with attempt" if recording else "without"
                pipeline.Attempt = Attempt if recording else _NoAttempt  # type: ignore[assignment,misc]
                bodies = wechat_v2_bodies(keys, args.n, f"{tag}-{r}-{int(recording)}")
                requests = [InboundRequest("POST", "notify", {"content-type": XML}, b"", b) for b in bodies]

                async def handle(requests: list[InboundRequest] = requests) -> None:
                    for request in requests:
                        await notifier.handle("shop", request)

                before = len(delivered)
                timings.setdefault(f"pipeline {label}", []).append(await _timed(args.n, handle))
                if len(delivered) - before != args.n:
                    raise RuntimeError(f"{len(delivered) - before} of {args.n} delivered")
                results = [_result(i, f"alone-{tag}-{r}-{recording}") for i in range(args.n)]
                store = notifier.store

                async def alone(
                    results: list[PaymentResult] = results, recording: bool = recording, store: Any = store
                ) -> None:
                    for result in results:
                        claim = await store.claim(result, lease_seconds=60)
                        assert claim.token is not None
                        attempt = _REAL_OF(time.time(), "delivered") if recording else None
                        await store.complete(result.event_id, claim.token, attempt=attempt)

                timings.setdefault(f"store alone {label}", []).append(await _timed(args.n, alone))
    finally:
        pipeline.Attempt = Attempt  # type: ignore[misc]
        await notifier.aclose()
        if name == "postgresql":
            await _pg_execute(POSTGRES_URL, "public", f'DROP SCHEMA IF EXISTS "bench_attempts_{tag}" CASCADE')
        elif name == "redis":
            await _drop_redis(REDIS_URL, f"bench-attempts-{tag}:")
    return {k: {"best_us": min(v), "median_us": statistics.median(v)} for k, v in timings.items()}


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            try:
                figures = await _backend(name, Path(tmp), args)
            except Exception as exc:  # an unreachable server: say so, go on
                print(f"{name}: skipped ({type(exc).__name__}: {exc})")
                continue
            for label, figure in figures.items():
                best, median = figure["best_us"], figure["median_us"]
                print(f"{name:10} {label:28} best {best:8.1f} us  median {median:8.1f} us")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--backends", default="memory,sqlite,postgresql,redis")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
