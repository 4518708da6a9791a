"""The cost of watching: paynotify's pipeline with metrics and tracing on (prometheus_client, the
OpenTelemetry API with no SDK: nothing exported) against the same pipeline with them off, on the
same notifications, interleaved round by round (target: at most 5% more). Then a scrape's state
counts at 10^6 stored events on SQLite, read from the store and from the cache.

    python -m bench.ops [--n 300] [--rounds 15] [--json bench/results/ops.json]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench._common import interleave, machine, new_loop, write_json
from bench._fixtures import AlipayKeys, WeChatV3Keys, alipay_requests, as_request, wechat_v3_notes
from bench.pipeline import PIPELINE, _alipay_ok, _v3_ok, paynotify_contenders
from bench.stores import _fill_sqlite
from paynotify import Notifier
from paynotify.ops import Instrumentation

ON = "paynotify pipeline, metrics + tracing on"
TARGET = 1.05


def _cases(n: int) -> list[tuple[str, str, dict[str, Any], list[Any], Any]]:
    alipay = AlipayKeys.generate()
    v3 = WeChatV3Keys.generate()
    return [
        ("Alipay RSA2", "alipay", alipay.settings(), alipay_requests(alipay, n, "ops-alipay"), _alipay_ok),
        ("WeChat v3", "wechatpay-v3", v3.settings(),
         [as_request(h, b) for h, b in wechat_v3_notes(v3, n, "ops-v3")], _v3_ok),
    ]  # fmt: skip


def overhead(n: int, rounds: int) -> dict[str, Any]:
    loop = new_loop()
    out: dict[str, Any] = {}
    for name, provider, settings, requests, check in _cases(n):
        off = paynotify_contenders(provider, settings, requests, check)[0]
        on = paynotify_contenders(
            provider, settings, requests, check, observer=Instrumentation(registry=CollectorRegistry())
        )[0]
        on.name = ON
        timings = interleave([off, on], n, rounds, loop)
        ratios = [b / a for a, b in zip(timings[PIPELINE].rounds_us, timings[ON].rounds_us, strict=True)]
        out[name] = {
            "off_us": statistics.median(timings[PIPELINE].rounds_us),
            "on_us": statistics.median(timings[ON].rounds_us),
            "ratio": statistics.median(ratios),
            "rounds": ratios,
        }
        print(f"{name}: off {out[name]['off_us']:.1f} us, on {out[name]['on_us']:.1f} us, "
              f"on/off {out[name]['ratio']:.3f} (target <= {TARGET})", flush=True)  # fmt: skip
    loop.close()
    return out


async def state_counts(events: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "events.db")
        n = Notifier(f"sqlite:///{path}")
        instrumentation = Instrumentation(registry=CollectorRegistry(), tracing=False)
        from bench.stores import _result

        template = _result(0, "ops")
        claim = await n.store.claim(template, lease_seconds=60)
        assert claim.token is not None
        await n.store.complete(template.event_id, claim.token)
        await n.store.close()
        await _fill_sqlite(path, 1, events, template.event_id)
        n = Notifier(f"sqlite:///{path}")
        started = time.perf_counter()
        await instrumentation.refresh(n.store)  # reads the store
        read = time.perf_counter() - started
        cached = []
        for _ in range(100):
            started = time.perf_counter()
            await instrumentation.refresh(n.store)  # within state_cache_seconds: the cache
            cached.append(time.perf_counter() - started)
        await n.store.close()
    result = {"events": float(events), "store_ms": read * 1000, "cached_ms": statistics.median(cached) * 1000}
    print(f"state counts at {events:,} events (SQLite): from the store {result['store_ms']:.0f} ms, "
          f"from the cache {result['cached_ms']:.4f} ms (target < 10 ms)", flush=True)  # fmt: skip
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    data = {
        "machine": machine(),
        "overhead": overhead(args.n, args.rounds),
        "state_counts": asyncio.run(state_counts(args.events)),
    }
    if args.json:
        write_json(args.json, data)


if __name__ == "__main__":
    main()
