"""Every part of the benchmark in one run, then RESULTS.md and the plot:

    python -m bench [--quick]

1. per notification, as ASGI, against the SDKs and the bare route (bench.pipeline);
2. throughput and latency under uvicorn, wrk as the load (bench.throughput; needs `wrk`);
3. store scaling with 10^3, 10^5, 10^6 stored events, and 4. RSS over 10^5 notifications
   (bench.stores);
5. the cost of metrics and tracing, and a scrape's state counts at 10^6 events (bench.ops);
6. the cost of publishing each event to NATS, RabbitMQ and Redis (bench.publishers; brokers
   that do not answer are left out).
`--quick` runs everything smaller (a smoke test of the harness, not figures to quote).

    python -m bench merchant [...]

runs only the careful-merchant comparison (bench.merchant): per notification, paynotify on SQLite and
PostgreSQL against a hand-written route that verifies and records the event idempotently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import merchant, ops, pipeline, publishers, report, stores, throughput
from bench._common import BENCH_DIR

NAMED = {"merchant": merchant.main}
"""Benchmarks run alone by name: `python -m bench NAME [its options]`."""


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in NAMED:
        NAMED[sys.argv[1]](sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dir", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args()
    out = args.dir
    print("1. per notification (bench.pipeline)", flush=True)
    pipeline.main(
        ["--json", f"{out}/pipeline.json"] + (["--n", "100", "--rounds", "3"] if args.quick else [])
    )
    print("2. throughput under uvicorn (bench.throughput)", flush=True)
    quick = ["--rounds", "2", "--seconds", "1"] if args.quick else []
    throughput.main(["--json", f"{out}/throughput.json", *quick])  # wrk, or the asyncio generator
    print("3-4. store scaling and RSS (bench.stores)", flush=True)
    small = ["--sizes", "1000,10000", "--per-size", "100", "--rounds", "2", "--rss-n", "20000"]
    stores.main(["--dir", str(out)] + (small if args.quick else []))
    print("5. the cost of metrics and tracing (bench.ops)", flush=True)
    ops.main(
        ["--json", f"{out}/ops.json"]
        + (["--n", "100", "--rounds", "3", "--events", "10000"] if args.quick else [])
    )
    print("6. publishing to brokers (bench.publishers)", flush=True)
    publishers.main(
        ["--json", f"{out}/publishers.json"] + (["--n", "100", "--rounds", "2"] if args.quick else [])
    )
    print(
        report.write_results(
            report.Path(out), BENCH_DIR / "RESULTS.md", BENCH_DIR / "stores.png", "python -m bench"
        )
    )


if __name__ == "__main__":
    main()
