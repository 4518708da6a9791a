"""Part 2: end-to-end throughput and p50/p99 latency under uvicorn (one worker, uvloop, httptools),
paynotify's route with the memory and the SQLite store against a bare Starlette route doing the
Alipay floor inline (and a bare `success` route, the ceiling). Loopback only; the load generator is a
second process; everything is bounded in time.

    python -m bench.throughput [--seconds 6] [--warmup 2] [--connections 32] [--json out.json]

Server and generator are pinned to one core each (the machine has two). The generator is asyncio
protocols on uvloop with keep-alive connections, one request in flight per connection; its own CPU
use is reported, so a generator-bound run shows itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
"""Routes whose bodies must never repeat within a run (a repeat is a duplicate, a cheaper path)."""


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


# -- the load generator (its own process) ---------------------------------------------------------


class _Generator:
    def __init__(self, bodies: list[bytes], wrap: bool, warm_until: float, deadline: float) -> None:
        self.requests = [
            b"POST /shop/notify HTTP/1.1\r\nHost: bench\r\n"
            b"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            for body in bodies
        ]
        self.wrap = wrap
        self.next = 0
        self.warm_until = warm_until
        self.deadline = deadline
        self.latencies: list[float] = []
        self.completed_in_window = 0
        self.errors = 0
        self.exhausted = False
        self.open = 0
        self.finished = asyncio.get_running_loop().create_future()

    def take(self) -> bytes | None:
        if time.perf_counter() >= self.deadline:
            return None
        if self.next >= len(self.requests):
            if not self.wrap:
                self.exhausted = True
                return None
            self.next = 0
        request = self.requests[self.next]
        self.next += 1
        return request

    def record(self, sent: float, status: int, body: bytes) -> None:
        done = time.perf_counter()
        if sent >= self.warm_until and done <= self.deadline:
            self.latencies.append(done - sent)
        if self.warm_until <= done <= self.deadline:
            self.completed_in_window += 1
        if status != 200 or body != b"success":
            self.errors += 1

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.finished.done():
            self.finished.set_result(None)


class _Connection(asyncio.Protocol):
    def __init__(self, generator: _Generator) -> None:
        self.generator = generator
        self.buffer = b""
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        request = self.generator.take()
        if request is None:
            self.transport.close()
            return
        self.sent = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        self.generator.record(self.sent, int(head[9:12]), body)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.generator.closed()


async def _load(
    port: int, bodies: list[bytes], wrap: bool, connections: int, warmup: float, seconds: float
) -> dict[str, Any]:
    start = time.perf_counter()
    generator = _Generator(bodies, wrap, start + warmup, start + warmup + seconds)
    loop = asyncio.get_running_loop()
    cpu_start = time.process_time()
    generator.open = connections
    for _ in range(connections):
        await loop.create_connection(lambda: _Connection(generator), "127.0.0.1", port)
    await generator.finished
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - start
    window = min(time.perf_counter(), generator.deadline) - generator.warm_until
    latencies = sorted(generator.latencies)

    def percentile(q: float) -> float:
        return (
            1000 * latencies[min(len(latencies) - 1, int(len(latencies) * q))] if latencies else float("nan")
        )

    return {
        "rps": generator.completed_in_window / window if window > 0 else 0.0,
        "requests": generator.completed_in_window,
        "window_s": window,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "errors": generator.errors,
        "exhausted": generator.exhausted,
        "sent": generator.next,
        "client_cpu": cpu / wall,
    }


def loadgen_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--wrap", action="store_true")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    bodies = args.bodies.read_bytes().split(b"\n")
    try:
        import uvloop

        run: Callable[..., Any] = uvloop.run
    except ImportError:
        run = asyncio.run
    result = run(_load(args.port, bodies, args.wrap, args.connections, args.warmup, args.seconds))
    args.out.write_text(json.dumps(result))


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


def run_route(kind: str, tmp: Path, bodies_file: Path, args: argparse.Namespace) -> dict[str, Any]:
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
        out = tmp / f"{kind}.json"
        loadgen = [sys.executable, "-m", "bench.throughput", "loadgen", "--port", str(port), "--bodies",
                   str(bodies_file), "--connections", str(args.connections), "--warmup", str(args.warmup),
                   "--seconds", str(args.seconds), "--out", str(out)]  # fmt: skip
        if kind not in DEDUPLICATING:
            loadgen.append("--wrap")
        subprocess.run(loadgen, env=env, check=True, preexec_fn=_pinned(args.client_cpu), timeout=120)
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn

    keys, bodies = cached_alipay(args.notifications)
    routes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "public.pem").write_text(keys.public_pem)
        bodies_file = tmp / "bodies.txt"
        bodies_file.write_bytes(b"\n".join(bodies))
        for kind in args.routes:
            result = run_route(kind, tmp, bodies_file, args)
            routes[ROUTES[kind]] = result
            rps, p50, p99, cpu = result["rps"], result["p50_ms"], result["p99_ms"], result["client_cpu"]
            line = f"{rps:,.0f}/s p50 {p50:.2f} ms p99 {p99:.2f} ms client CPU {cpu:.0%}"
            print(f"  {ROUTES[kind]}: {line}", flush=True)
    return {
        "machine": machine(),
        "uvicorn": uvicorn.__version__,
        "loop": args.loop,
        "http": args.http,
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "generator": "asyncio protocols on uvloop (bench.throughput loadgen)",
        "connections": args.connections,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "notifications": len(bodies),
        "routes": routes,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per route")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--notifications", type=int, default=40_000, help="distinct signed bodies (cached)")
    p.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    p.add_argument("--loop", default="uvloop")
    p.add_argument("--http", default="httptools")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the raw results here")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["loadgen"]:
        loadgen_main(argv[1:])
        return
    args = parser().parse_args(argv)
    results = run(args)
    if args.json:
        write_json(args.json, results)
    from bench.report import throughput_table

    print(throughput_table(results))


if __name__ == "__main__":
    main()
