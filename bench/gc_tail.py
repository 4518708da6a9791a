"""The tail under a burst and the collector: paynotify on the memory store, with and without
`gc.freeze()` after start-up (what `paynotify serve` does), against the bare Alipay floor route.

    python -m bench.gc_tail [--n 20000] [--concurrency 32] [--rounds 5]

Each round runs every variant in a fresh process of its own (a fresh heap), in an order rotated every
round. A process signs its Alipay notifications first (distinct ones: nothing is a duplicate), then
sends them through the ASGI app in-process (no HTTP: the tail here is the app's and the collector's),
`--concurrency` at a time, timing each request and every collection (`gc.callbacks`). Printed: the
median over rounds of each variant's p50, p99, p99.9 and max latency, of its longest and total
collection pause, of its full collections (count, longest), and the objects a full collection walks
at the end (`len(gc.get_objects())`: frozen ones are not among them). On a loaded machine a pause
includes the time the process was descheduled during it: the object count is the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from bench._common import asgi_call, new_loop, scope_template
from bench._fixtures import AlipayKeys, alipay_requests

VARIANTS = ("floor", "memory", "memory+freeze")


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_one(variant: str, n: int, concurrency: int) -> dict[str, float]:
    """One variant in this process: its latency percentiles and collection pauses, in ms."""
    from bench import _floors
    from paynotify import Notifier, PaymentResult

    keys = AlipayKeys.generate()
    requests = alipay_requests(keys, n, f"gc-{variant}-{time.time_ns()}")
    loop = new_loop()
    asyncio.set_event_loop(loop)
    if variant == "floor":
        app: Any = _floors.alipay_app(keys.public_pem)
        path = "/shop/notify"
    else:
        notifier = Notifier("memory://")
        notifier.add_account("shop", "alipay", **keys.settings())

        @notifier.subscribe
        async def record(result: PaymentResult) -> None:
            pass

        loop.run_until_complete(notifier.__aenter__())
        app, path = notifier.asgi(), "/shop/notify"
        if variant.endswith("+freeze"):
            from paynotify.cli._serve import freeze_start_up_heap

            freeze_start_up_heap()
    pauses: list[float] = []
    full: list[float] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)
            if info["generation"] == 2:
                full.append(pauses[-1])

    template = scope_template(path)
    latencies: list[float] = []
    pending = iter(requests)

    async def worker() -> None:
        for headers, body in pending:
            t = time.perf_counter()
            status, _ = await asgi_call(app, template, headers, body)
            latencies.append((time.perf_counter() - t) * 1000)
            if status != 200:
                raise AssertionError(f"{variant}: status {status}")

    async def burst() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    gc.callbacks.append(on_gc)
    loop.run_until_complete(burst())
    gc.callbacks.remove(on_gc)
    latencies.sort()
    return {
        "p50": _percentile(latencies, 0.5),
        "p99": _percentile(latencies, 0.99),
        "p99.9": _percentile(latencies, 0.999),
        "max": latencies[-1],
        "gc_max": max(pauses, default=0.0),
        "gc_total": sum(pauses),
        "collections": float(len(pauses)),
        "full_collections": float(len(full)),
        "full_max": max(full, default=0.0),
        "walked_by_a_full_collection": float(len(gc.get_objects())),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.n, args.concurrency)))
        return
    variants = args.variants.split(",")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for i in range(args.rounds):
        for variant in variants[i % len(variants) :] + variants[: i % len(variants)]:
            command = [sys.executable, "-m", "bench.gc_tail", "--one", variant, "--n", str(args.n),
                       "--concurrency", str(args.concurrency)]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout
            results[variant].append(json.loads(out.strip().splitlines()[-1]))
            print(f"  round {i + 1} {variant}: {results[variant][-1]}", flush=True)
    print(f"medians of {args.rounds} rounds, {args.n} notifications, {args.concurrency} at a time (ms):")
    for variant, runs in results.items():
        cells = ", ".join(f"{k} {statistics.median(r[k] for r in runs):.2f}" for k in runs[0])
        print(f"  {variant}: {cells}")


if __name__ == "__main__":
    main()
