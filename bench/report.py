"""RESULTS.md and the plot, from the parts' JSON results.

python -m bench.report [--dir bench/results]      # rewrite bench/RESULTS.md and bench/stores.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench._common import BENCH_DIR

PIPELINE = "paynotify pipeline (ASGI)"
BARE_ROUTE = "bare Starlette floor (Alipay RSA2)"
MEMORY_ROUTE = "paynotify, memory store"
SQLITE_ROUTE = "paynotify, SQLite store"
RSS_FLAT_BYTES_PER_NOTIFICATION = 16.0
"""`RSS flat`: at most this many bytes of growth per notification after the first sample."""


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


# -- part 1 ----------------------------------------------------------------------------------------


def round_ratio(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> float:
    """The median over rounds of ours / theirs within each round.

    Both ran in the same round, seconds apart, so a slow spell of the machine moves both; the
    best-of-rounds of each, taken from different moments, does not cancel out that way.
    """
    return statistics.median(a / b for a, b in zip(ours["rounds_us"], theirs["rounds_us"], strict=True))


def pipeline_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per pipeline target: the median of the per-round ratios (and the best rounds' ratio)."""
    rows = []
    for target in results["targets"]:
        contenders = results["cases"][target["case"]]["contenders"]
        ours, theirs = contenders[PIPELINE], contenders[target["contender"]]
        ratio = round_ratio(ours, theirs)
        rows.append(
            {
                "what": f"{target['case']}: pipeline / {target['contender']}",
                "measured": ratio,
                "best_ratio": ours["best_us"] / theirs["best_us"],
                "limit": f"<= {target['limit']:.2f}"
                + (f" (stretch {target['stretch']:.2f})" if target.get("stretch") else ""),
                "ok": ratio <= target["limit"],
                "stretch_ok": target.get("stretch") is not None and ratio <= target["stretch"],
                "note": target.get("note", ""),
            }
        )
    return rows


def pipeline_table(results: Mapping[str, Any]) -> str:
    lines = [
        f"N = {results['n']} distinct notifications per case, {results['rounds']} interleaved rounds; "
        "microseconds per notification on one core (best round, median round); ratio = pipeline / row, "
        "the median of the per-round ratios.",
        "",
        "| case | contender | best us | median us | pipeline / contender |",
        "|---|---|---:|---:|---:|",
    ]
    for case, data in results["cases"].items():
        contenders = data["contenders"]
        ours = contenders[PIPELINE]
        for name, timing in contenders.items():
            ratio = "" if name == PIPELINE else f"{round_ratio(ours, timing):.2f}"
            label = f"*{name}*" if timing.get("reference") else name
            lines.append(
                f"| {case} | {label} | {_fmt(timing['best_us'])} | {_fmt(timing['median_us'])} | {ratio} |"
            )
    for data in results["cases"].values():
        if data.get("note"):
            lines.append(f"\n{data['note']}")
    for note in results.get("notes", []):
        lines.append(f"\n**{note}**")
    return "\n".join(lines)


# -- part 2 ----------------------------------------------------------------------------------------


def throughput_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    routes = results["routes"]
    if BARE_ROUTE not in routes:
        return []
    rows = []
    for route, limit in ((MEMORY_ROUTE, 0.7), (SQLITE_ROUTE, 0.5)):
        if route in routes:
            ratio = throughput_ratio(routes[route], routes[BARE_ROUTE])
            rows.append({"what": f"uvicorn throughput: {route} / bare floor route", "measured": ratio,
                         "ratio_of_medians": routes[route]["rps"] / routes[BARE_ROUTE]["rps"],
                         "limit": f">= {limit:.2f}", "ok": ratio >= limit})  # fmt: skip
    return rows


def throughput_ratio(route: Mapping[str, Any], bare: Mapping[str, Any]) -> float:
    """The median, over rounds, of the route's requests/s over the bare route's in the same round:
    a round loads every route within seconds, so a slow spell of the VM hits both sides of a ratio."""
    pairs = zip(route["rps_rounds"], bare["rps_rounds"], strict=True)
    return statistics.median(ours / theirs for ours, theirs in pairs)


def throughput_table(results: Mapping[str, Any]) -> str:
    routes = results["routes"]
    bare = routes.get(BARE_ROUTE)
    lines = [
        f"uvicorn {results['uvicorn']}, one worker (loop {results['loop']}, http {results['http']}), "
        f"pinned to CPU {results['server_cpu']}; load generator: {results['generator']} in a second "
        f"process pinned to CPU {results['client_cpu']}, {results['connections']} keep-alive connections "
        f"on loopback; {results['warmup']:g} s warm-up per route, then {results['rounds']} rounds of "
        f"{results['seconds']:g} s per route, routes rotated each round; requests/s is the median round, "
        "p50/p99 are that round's; / bare floor is the median of the per-round ratios; every request "
        "a distinct signed Alipay RSA2 notification.",
        "",
        "| route | requests/s (median) | rounds | p50 ms | p99 ms | requests | errors | / bare floor |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for route, r in routes.items():
        ratio = f"{throughput_ratio(r, bare):.2f}" if bare else ""
        rounds = ", ".join(f"{x:,.0f}" for x in r.get("rps_rounds", []))
        lines.append(
            f"| {route} | {r['rps']:,.0f} | {rounds} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['requests']:,} | {r['errors']} | {ratio} |"
        )
    return "\n".join(lines)


# -- part 3 ----------------------------------------------------------------------------------------


def store_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for store, data in results["stores"].items():
        sizes = {int(k): v for k, v in data["sizes"].items()}
        if len(sizes) < 2:
            continue
        low, high = min(sizes), max(sizes)
        # Sizes are measured in the same rounds (interleaved): pair each round's figures, as in part 1.
        pairs = zip(sizes[high]["pipeline"]["rounds_us"], sizes[low]["pipeline"]["rounds_us"], strict=True)
        ratio = statistics.median(ours / theirs for ours, theirs in pairs)
        limit = 1.2
        rows.append(
            {
                "what": f"{store}: cost per notification at {high:.0e} / at {low:.0e} stored events",
                "measured": ratio,
                "best_ratio": sizes[high]["pipeline"]["best_us"] / sizes[low]["pipeline"]["best_us"],
                "limit": f"<= {limit:.2f}" if (low, high) == (10**3, 10**6) else f"<= {limit:.2f} (at 1e6)",
                "ok": ratio <= limit,
            }
        )
    return rows


def store_table(results: Mapping[str, Any]) -> str:
    lines = [
        f"Each size: {results['per_size']} new distinct {results['provider']} notifications through "
        f"the whole pipeline as ASGI, {results['rounds']} rounds rotating over the sizes, each size in a "
        "store of its own (best, median; the target's ratio is the median of the per-round ratios); "
        "*store alone* is `claim` + `complete` on the same store without the pipeline. Pre-fill: "
        + results["prefill_method"],
        "",
        "| store | stored events | pipeline best us | pipeline median us | notifications/s "
        "| store alone best us | store alone median us | pre-fill s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for store, data in results["stores"].items():
        for size, row in data["sizes"].items():
            p, s = row["pipeline"], row["store_only"]
            lines.append(
                f"| {store} | {int(size):,} | {_fmt(p['best_us'])} | {_fmt(p['median_us'])} "
                f"| {1e6 / p['best_us']:,.0f} | {_fmt(s['best_us'])} | {_fmt(s['median_us'])} "
                f"| {row['prefill_seconds']:.1f} |"
            )
    for store, reason in results.get("skipped", {}).items():
        lines.append(f"\n{store}: skipped ({reason}).")
    return "\n".join(lines)


def rss_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    samples = results["samples"]
    if len(samples) < 3:
        return []
    (n0, r0), (n1, r1) = samples[1], samples[-1]
    per = (r1 - r0) / (n1 - n0)
    return [
        {
            "what": f"RSS over {n1:,} notifications ({results['store']} store): growth after {n0:,}",
            "measured": per,
            "unit": "B/notification",
            "limit": f"<= {RSS_FLAT_BYTES_PER_NOTIFICATION:.0f} B/notification (flat)",
            "ok": per <= RSS_FLAT_BYTES_PER_NOTIFICATION,
        }
    ]


def rss_table(results: Mapping[str, Any]) -> str:
    lines = [
        f"One fresh process; {results['provider']} notifications, each distinct, through the whole "
        f"pipeline as ASGI with the {results['store']} store, made in chunks of {results['chunk']:,} "
        "between samples; RSS (psutil) after each chunk and a gc.collect().",
        "",
        "| notifications | RSS MiB | growth since previous, B/notification |",
        "|---:|---:|---:|",
    ]
    previous: tuple[int, int] | None = None
    for n, rss in results["samples"]:
        per = "" if previous is None or n == previous[0] else f"{(rss - previous[1]) / (n - previous[0]):.1f}"
        lines.append(f"| {n:,} | {rss / 2**20:.1f} | {per} |")
        previous = (n, rss)
    return "\n".join(lines)


def plot(stores: Mapping[str, Any] | None, rss: Mapping[str, Any] | None, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [p for p in (stores, rss) if p]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    column = 0
    if stores:
        ax = axes[0][column]
        column += 1
        for store, data in stores["stores"].items():
            sizes = sorted(int(s) for s in data["sizes"])
            rates = [1e6 / data["sizes"][str(s)]["pipeline"]["best_us"] for s in sizes]
            ax.plot(sizes, rates, marker="o", label=store)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("events already stored")
        ax.set_ylabel("notifications / s (one core, pipeline as ASGI)")
        ax.set_title(f"Throughput against stored events ({stores['provider']})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    if rss:
        ax = axes[0][column]
        counts = [n for n, _ in rss["samples"]]
        ax.plot(counts, [r / 2**20 for _, r in rss["samples"]], marker="o")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("notifications handled")
        ax.set_ylabel("RSS, MiB")
        ax.set_title(f"Memory over {counts[-1]:,} notifications ({rss['store']} store)")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the whole file --------------------------------------------------------------------------------


def _load(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def summary(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| target | measured | target | verdict |", "|---|---:|---|---|"]
    for row in rows:
        unit = row.get("unit", "")
        measured = f"{row['measured']:.2f}" + (f" {unit}" if unit else "")
        if "median_ratio" in row:
            measured += f" (median {row['median_ratio']:.2f})"
        if "ratio_of_medians" in row:
            measured += f" (median rounds {row['ratio_of_medians']:.2f})"
        if "best_ratio" in row:
            measured += f" (best rounds {row['best_ratio']:.2f})"
        verdict = _verdict(row["ok"])
        if row.get("stretch_ok"):
            verdict += ", stretch met"
        note = f" ({row['note']})" if row.get("note") else ""
        lines.append(f"| {row['what']}{note} | {measured} | {row['limit']} | {verdict} |")
    return "\n".join(lines)


METHOD = """\
- **Per notification (part 1).** Each case pre-generates N distinct, genuinely signed notifications
  with the providers' `testing` helpers (throwaway keys); every contender gets the same keys and the
  same bytes. A round runs each contender once over all N, in an order rotated every round; one
  untimed warm-up round first. Timer `time.perf_counter_ns()` around the whole batch; a round's time / N
  is one sample; the table shows the best (minimum) and the median round. A ratio is the median,
  over rounds, of the two contenders' times in the same round: this shared 2-core VM changes speed
  by up to 2x within seconds, and two runs seconds apart slow down together (the ratio of the best
  rounds is in the summary too). GC: `gc.collect()` before every timed batch, GC enabled during it. The event
  loop is uvloop's, as under uvicorn. The pipeline is `Notifier("memory://").asgi()` called directly
  (scope/receive/send built by the harness, no HTTP) with one async subscriber; its memory store is
  replaced by an empty one before every round, outside the timing, so no notification is a duplicate.
  The SDKs are called as merchants call them (python-alipay-sdk after form decoding). *Italic* rows
  are references: the floors as plain functions, single primitives, and paynotify's own stages.
- **Throughput (part 2).** All uvicorn servers (one worker each, uvloop, httptools) run at once,
  pinned to CPU 0; wrk (one thread, `bench/wrk_bodies.lua`) is the load, pinned to CPU 1, 32
  keep-alive connections on loopback. Each round loads every route for the same seconds, in an order
  rotated every round, so a slow spell of this shared VM hits every route alike; a route's figure is
  its median round (its rounds are in the table), and its ratio to the bare floor is the median of
  the per-round ratios, as in part 1 (the ratio of the median rounds is in the summary too). Every
  route gets the same distinct signed bodies; the deduplicating routes never see a body twice. Only
  `success` counts as an acknowledgement.
- **Store scaling (part 3).** One store per size is pre-filled with completed events cloned from a
  row the store itself wrote (so the schema, indexes and row size are the store's own), then new
  distinct notifications go through the pipeline one at a time, in rounds rotating over the sizes
  (a ratio is the median of the per-round ratios), so the figure is mostly each store's commit
  latency (SQLite and PostgreSQL fsync every commit). Pre-fill is bulk and not timed.
- **RSS (part 4).** A fresh process, RSS (psutil) after each chunk of notifications and a gc.collect().
"""


def ops_table(data: dict[str, Any]) -> str:
    lines = [
        "| case | metrics + tracing off (us) | on (us) | on / off (median of rounds) | target |",
        "|---|---|---|---|---|",
    ]
    for case, row in data.get("overhead", {}).items():
        met = "met" if row["ratio"] <= 1.05 else "NOT met"
        figures = f"{row['off_us']:.1f} | {row['on_us']:.1f} | {row['ratio']:.3f}"
        lines.append(f"| {case} | {figures} | <= 1.05 ({met}) |")
    counts = data.get("state_counts")
    if counts:
        lines += [
            "",
            f"State counts at {int(counts['events']):,} stored events (SQLite): read from the store "
            f"{counts['store_ms']:.0f} ms, served from the cache {counts['cached_ms']:.4f} ms "
            "(target < 10 ms).",
        ]
    return "\n".join(lines)


def publishers_table(data: dict[str, Any]) -> str:
    lines = [
        "| broker | client alone, same confirmation (us) | publisher (us) | publisher / client "
        "| pipeline + publisher (us) | pipeline alone (us) |",
        "|---|---|---|---|---|---|",
    ]
    for broker, row in data.get("brokers", {}).items():
        if not row:
            continue
        m = row["median_us"]
        lines.append(
            f"| {broker} | {m['bare']:.0f} | {m['publisher']:.0f} | {m['publisher'] / m['bare']:.2f} | "
            f"{m['pipeline + publisher']:.0f} | {m['pipeline alone']:.0f} |"
        )
    return "\n".join(lines)


def write_results(directory: Path, out: Path, plot_path: Path, command: str) -> str:
    pipeline = _load(directory, "pipeline")
    throughput = _load(directory, "throughput")
    stores = _load(directory, "stores")
    rss = _load(directory, "rss")
    machine = next((d["machine"] for d in (pipeline, throughput, stores, rss) if d and "machine" in d), {})
    rows: list[dict[str, Any]] = []
    if pipeline:
        rows += pipeline_rows(pipeline)
    if throughput:
        rows += throughput_rows(throughput)
    if stores:
        rows += store_rows(stores)
    if rss:
        rows += rss_rows(rss)
    picture = plot(stores, rss, plot_path)
    parts = [
        "# Benchmark results",
        "",
        f"Written by `{command}` (see [README.md](README.md)); regenerate after any change to the "
        "pipeline. Analysis, profiles and proposals: [docs/benchmarks.md](../docs/benchmarks.md).",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        "",
        "## Targets (issues 5, 13 and 16)",
        "",
        summary(rows) if rows else "No part was run.",
        "",
        "## Method",
        "",
        METHOD,
    ]
    if pipeline:
        parts += ["## 1. Per notification, as ASGI, against the SDKs and the bare route", "",
                  pipeline_table(pipeline), ""]  # fmt: skip
    if throughput:
        parts += ["## 2. Throughput and latency under uvicorn", "", throughput_table(throughput), ""]
    if stores:
        parts += ["## 3. Store scaling", "", store_table(stores), ""]
    if picture:
        parts += [f"![throughput against stored events; RSS]({picture.name})", ""]
    if rss:
        parts += ["## 4. Memory over many notifications", "", rss_table(rss), ""]
    ops = _load(directory, "ops")
    if ops:
        parts += ["## 5. The cost of metrics and tracing", "", ops_table(ops), ""]
    published = _load(directory, "publishers")
    if published:
        parts += ["## 6. Publishing each event to a broker", "", publishers_table(published), ""]
    text = "\n".join(parts)
    out.write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=BENCH_DIR / "stores.png")
    args = parser.parse_args(argv)
    print(write_results(args.dir, args.out, args.plot, "python -m bench.report"))


if __name__ == "__main__":
    main()
