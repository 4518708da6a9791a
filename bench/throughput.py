"""Part 2: end-to-end throughput and p50/p99 latency under uvicorn (one worker, uvloop, httptools),
paynotify's route with the memory and the SQLite store against a bare Starlette route doing the
Alipay floor inline (and a bare `success` route, the ceiling). Loopback only; bounded in time.

    python -m bench.throughput [--seconds 2] [--rounds 5] [--connections 32] [--json out.json]

The load generator is wrk (Debian package `wrk`), one thread, in its own process; servers and wrk
are pinned to one core each (the machine has two). All servers run at once, idle but for the one
under load; each round measures every route for `--seconds`, in an order rotated every round, so
a slow spell of this shared machine hits every route alike. A route's figure is its median round.
Every request is a distinct signed Alipay notification; deduplicating routes never see a body twice.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench._common import BENCH_DIR, machine, write_json
from bench._fixtures import ALIPAY_APP_ID, AlipayKeys, alipay_bodies

ROUTES = {
    "success": "bare `success` route (no verification: the ceiling)",
    "floor": "bare Starlette floor (Alipay RSA2)",
    "memory": "paynotify, memory store",
    "sqlite": "paynotify, SQLite store",
}
DEDUPLICATING = frozenset({"memory", "sqlite"})
"""Routes whose bodies must never repeat (a repeat is a duplicate, a cheaper path)."""
WRK_SCRIPT = BENCH_DIR / "wrk_bodies.lua"


# -- the servers (imported by uvicorn in the server process) --------------------------------------


def make_app() -> Any:
    """`uvicorn --factory bench.throughput:make_app`, configured by BENCH_* environment variables."""
    from bench import _floors

    kind, public_pem = os.environ["BENCH_APP"], Path(os.environ["BENCH_PUBLIC_KEY"]).read_text()
    if kind == "success":
        return _floors.success_app()
    if kind == "floor":
        return _floors.alipay_app(public_pem)
    from paynotify import Notifier, PaymentResult

    store = "memory://" if kind == "memory" else f"sqlite:///{os.environ['BENCH_DB']}"
    notifier = Notifier(store)
    notifier.add_account("shop", "alipay", app_id=ALIPAY_APP_ID, alipay_public_key=public_pem)
    count = [0]

    @notifier.subscribe
    async def record(result: PaymentResult) -> None:
        count[0] += 1

    return notifier.asgi()


# -- wrk ---------------------------------------------------------------------------------------------


def _wrk(port: int, bodies_file: Path, first: int, wrap: bool, args: argparse.Namespace,
         seconds: float) -> dict[str, Any]:  # fmt: skip
    """One wrk run (one thread: it is C, and one core is what the generator gets); its summary."""
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s",
               str(WRK_SCRIPT), f"http://127.0.0.1:{port}", "--", str(bodies_file), str(first),
               "wrap" if wrap else "once"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60,
                          preexec_fn=_pinned(args.client_cpu))  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    summary: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    window = summary["duration_us"] / 1e6
    cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "rps": summary["requests"] / window,
        "requests": summary["requests"],
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": summary["refused"] + summary["socket_errors"],
        "client_cpu": cpu_seconds / window,
    }


class Route:
    """One running server and the bodies it has not seen yet."""

    def __init__(self, kind: str, port: int, bodies_file: Path, count: int) -> None:
        self.kind, self.port, self.bodies_file, self.count = kind, port, bodies_file, count
        self.first = 1
        self.rounds: list[dict[str, Any]] = []

    def load(self, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
        wrap = self.kind not in DEDUPLICATING
        if self.first > self.count:
            raise RuntimeError(f"{self.kind}: all {self.count} bodies used; raise --notifications")
        result = _wrk(self.port, self.bodies_file, self.first, wrap, args, seconds)
        if not wrap:
            self.first += result["requests"] + args.connections  # requests cut off at the end too
        return result

    def summary(self) -> dict[str, Any]:
        rps = [r["rps"] for r in self.rounds]
        median = statistics.median(rps)
        middle = min(self.rounds, key=lambda r: abs(r["rps"] - median))
        return {
            "rps": median,
            "rps_rounds": rps,
            "requests": sum(r["requests"] for r in self.rounds),
            "p50_ms": middle["p50_ms"],
            "p99_ms": middle["p99_ms"],
            "errors": sum(r["errors"] for r in self.rounds),
            "client_cpu": max(r["client_cpu"] for r in self.rounds),
        }


# -- orchestration --------------------------------------------------------------------------------


def cached_alipay(n: int) -> tuple[AlipayKeys, list[bytes]]:
    """`n` signed Alipay notifications and their key, signed once (in two processes) and kept in
    bench/.cache: signing costs ~1 ms each. Alipay has no replay window, so old ones stay valid."""
    cache = BENCH_DIR / ".cache" / f"alipay-{n}.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        return AlipayKeys(data["private_pem"], data["public_pem"]), [b.encode() for b in data["bodies"]]
    keys = AlipayKeys.generate()
    bodies = alipay_bodies(keys, n, "load", processes=os.cpu_count() or 1)
    cache.parent.mkdir(exist_ok=True)
    (cache.parent / ".gitignore").write_text("*\n")
    cache.write_text(json.dumps({"private_pem": keys.private_pem, "public_pem": keys.public_pem,
                                 "bodies": [b.decode() for b in bodies]}))  # fmt: skip
    return keys, bodies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the server did not start in 30 s")


def _pinned(cpu: int) -> Callable[[], None] | None:
    if not hasattr(os, "sched_setaffinity") or cpu >= (os.cpu_count() or 1):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextmanager
def _server(kind: str, tmp: Path, args: argparse.Namespace) -> Iterator[int]:
    port = _free_port()
    env = os.environ | {
        "BENCH_APP": kind,
        "BENCH_PUBLIC_KEY": str(tmp / "public.pem"),
        "BENCH_DB": str(tmp / f"events-{kind}-{time.time_ns()}.db"),
        "PYTHONPATH": str(BENCH_DIR.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.throughput:make_app"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    command += ["--loop", args.loop, "--http", args.http]
    server = subprocess.Popen(command, env=env, preexec_fn=_pinned(args.server_cpu))
    try:
        _wait_port(port, server)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian/Ubuntu)")
    keys, bodies = cached_alipay(args.notifications)
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        (tmp / "public.pem").write_text(keys.public_pem)
        bodies_file = tmp / "bodies.txt"
        bodies_file.write_bytes(b"\n".join(bodies))
        routes = [Route(kind, servers.enter_context(_server(kind, tmp, args)), bodies_file, len(bodies))
                  for kind in args.routes]  # fmt: skip
        for route in routes:
            route.load(args, args.warmup)
        for r in range(args.rounds):
            for route in routes[r % len(routes) :] + routes[: r % len(routes)]:
                route.rounds.append(route.load(args, args.seconds))
            line = ", ".join(f"{route.kind} {route.rounds[-1]['rps']:,.0f}/s" for route in routes)
            print(f"  round {r + 1}: {line}", flush=True)
    return {
        "machine": machine(),
        "uvicorn": uvicorn.__version__,
        "loop": args.loop,
        "http": args.http,
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "generator": "wrk 4, one thread (bench/wrk_bodies.lua)",
        "connections": args.connections,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "notifications": len(bodies),
        "routes": {ROUTES[route.kind]: route.summary() for route in routes},
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per route and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per route first")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--notifications", type=int, default=80_000, help="distinct signed bodies (cached)")
    p.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    p.add_argument("--loop", default="uvloop")
    p.add_argument("--http", default="httptools")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the raw results here")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    results = run(args)
    if args.json:
        write_json(args.json, results)
    from bench.report import throughput_table

    print(throughput_table(results))


if __name__ == "__main__":
    main()
