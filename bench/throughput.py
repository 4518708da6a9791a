"""Part 2: end-to-end throughput and p50/p99 latency under uvicorn (one worker, uvloop, httptools),
paynotify's route with the memory and the SQLite store against a bare Starlette route doing the
Alipay floor inline (and a bare `success` route, the ceiling). Loopback only; bounded in time.

    python -m bench.throughput [--seconds 2] [--rounds 5] [--connections 32] [--json out.json]

The load generator runs in its own process: wrk (Debian package `wrk`), one thread, with
bench/wrk_bodies.lua, or where wrk is missing (or with `--generator asyncio`) asyncio protocols on
uvloop (`python -m bench.throughput loadgen`); the JSON says which ran. Both keep one request in
flight per keep-alive connection. Servers and generator are pinned to one core each (the machine has
two). All servers run at once, idle but for the one under load; after a warm-up per route, each round
measures every route for `--seconds`, in an order rotated every round, so a slow spell of this shared
machine hits every route alike. A route's figure is its median round. Every request is a distinct
signed Alipay notification; deduplicating routes never see a body twice.

Per round and route the JSON has the CPU use (in cores) of the generator (wrk's includes loading
its bodies file), of the server, and of everything else on the machine (other processes, loopback
softirq): a server near 100% is the limit; a server well below it with a busy generator is a
generator-bound round, with busy "others" a round disturbed by the rest of this shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from bench._common import BENCH_DIR, machine, write_json
from bench._fixtures import ALIPAY_APP_ID, AlipayKeys, alipay_bodies

ROUTES = {
    "success": "bare `success` route (no verification: the ceiling)",
    "floor": "bare Starlette floor (Alipay RSA2)",
    "memory": "paynotify, memory store",
    "sqlite": "paynotify, SQLite store",
    "postgresql": "paynotify, PostgreSQL store",
    "merchant-postgresql": "careful merchant, PostgreSQL (asyncpg, bench.merchant)",
}
PAYNOTIFY_ROUTES = frozenset({"memory", "sqlite", "postgresql"})
DEDUPLICATING = PAYNOTIFY_ROUTES | {"merchant-postgresql"}
"""Routes whose bodies must never repeat (a repeat is a duplicate, a cheaper path)."""
WRK_SCRIPT = BENCH_DIR / "wrk_bodies.lua"
CONNECT_TIMEOUT = 5.0
"""Seconds the asyncio generator waits for each connection."""
REPLY_GRACE = 5.0
"""Seconds the asyncio generator waits, after its window, for replies still in flight."""
STARTUP_SLACK = 60.0
"""Seconds a generator process may take beyond its window (loading bodies, connecting, grace)."""
BODIES_PER_SECOND = 10_000
"""Distinct bodies signed per second of load on a deduplicating route when --notifications is not
given: above what they reach on this machine kind; a faster route stops the run with a clear error."""
POSTGRES_URL = os.environ.get("PAYNOTIFY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BASE = "@base"
"""A route kind ending so (with --base-tree) is served by that tree's paynotify: old against new."""
WRAP_BODIES = 20_000
"""Bodies cycled through on the routes that may see repeats: fewer lines for wrk to load."""


# -- the servers (imported by uvicorn in the server process) --------------------------------------


def make_app() -> Any:
    """`uvicorn --factory bench.throughput:make_app`, configured by BENCH_* environment variables."""
    from bench import _floors

    kind, public_pem = os.environ["BENCH_APP"], Path(os.environ["BENCH_PUBLIC_KEY"]).read_text()
    if kind == "success":
        return _floors.success_app()
    if kind == "floor":
        return _floors.alipay_app(public_pem)
    if kind == "merchant-postgresql":
        from bench.merchant import alipay_postgres_merchant

        return alipay_postgres_merchant(public_pem, POSTGRES_URL, os.environ["BENCH_SCHEMA"])
    from paynotify import Notifier, PaymentResult

    store = {"memory": "memory://", "sqlite": f"sqlite:///{os.environ['BENCH_DB']}",
             "postgresql": f"{POSTGRES_URL}?schema={os.environ['BENCH_SCHEMA']}"}[kind]  # fmt: skip
    notifier = Notifier(store)
    notifier.add_account("shop", "alipay", app_id=ALIPAY_APP_ID, alipay_public_key=public_pem)
    count = [0]

    @notifier.subscribe
    async def record(result: PaymentResult) -> None:
        count[0] += 1

    return notifier.asgi()


# -- one load run, whichever generator ------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one generator run against one route asks for."""

    port: int
    bodies_file: Path
    first: int
    """1-based line of `bodies_file` to start from."""
    wrap: bool
    """Start again at `first` when the bodies run out (only for routes that do not deduplicate)."""
    connections: int
    seconds: float
    cpu: int


@dataclass(frozen=True)
class Run:
    """What one generator run measured."""

    requests: int
    """Replies received within the window."""
    window_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Replies other than 200 `success`, and socket errors."""
    client_cpu: float
    """The generator's CPU seconds per second of window."""
    consumed: int
    """Bodies taken from `first` on (for wrk an upper bound: it does not report the exact count)."""


def _child_env(**extra: str) -> dict[str, str]:
    path = str(BENCH_DIR.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return os.environ | {"PYTHONPATH": path} | extra


def _pinned(cpu: int) -> Callable[[], None] | None:
    if not hasattr(os, "sched_setaffinity") or cpu >= (os.cpu_count() or 1):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _generator_process(command: list[str], load: Load) -> subprocess.CompletedProcess[str]:
    """Run a generator to completion within its window plus STARTUP_SLACK; fail with its stderr."""
    timeout = load.seconds + STARTUP_SLACK
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=_child_env(), preexec_fn=_pinned(load.cpu))  # fmt: skip
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        raise RuntimeError(f"{command[0]} ran past {timeout:.0f} s:\n{stderr}") from e
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr}")
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr, flush=True)
    return done


def _summary_line(stdout: str, prefix: str) -> dict[str, Any]:
    line = next((x for x in stdout.splitlines() if x.startswith(prefix)), None)
    if line is None:
        raise RuntimeError(f"the generator printed no {prefix.strip()} line:\n{stdout}")
    summary: dict[str, Any] = json.loads(line.removeprefix(prefix))
    return summary


# -- wrk ------------------------------------------------------------------------------------------


def wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.split()[1] if out.startswith("wrk ") else "?"


def wrk_load(load: Load) -> Run:
    """One wrk run (one thread: it is C, and one core is what the generator gets)."""
    command = ["wrk", "-t1", f"-c{load.connections}", f"-d{max(1, round(load.seconds))}s", "--latency",
               "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{load.port}", "--", str(load.bodies_file),
               str(load.first), "wrap" if load.wrap else "once"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = _generator_process(command, load)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = _summary_line(done.stdout, "WRK_JSON ")
    window = summary["duration_us"] / 1e6
    errors = summary["refused"] + summary["socket_errors"]
    cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(
        requests=summary["requests"],
        window_s=window,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
        client_cpu=cpu_seconds / window,
        # wrk_bodies.lua's count of bodies sent is not reachable from done(); this bounds it:
        # every body sent was answered, failed, or was in flight (one per connection) at the end.
        consumed=summary["requests"] + errors + load.connections,
    )


# -- the asyncio generator (the fallback; `python -m bench.throughput loadgen` in its own process) --


def parse_reply(buffer: bytearray) -> tuple[int, bytes, int] | None:
    """(status, body, bytes used) of the first whole HTTP/1.1 reply in `buffer`, None if partial."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > 65536:
            raise ValueError("no end of headers in 64 KiB")
        return None
    status_line, *headers = bytes(buffer[:end]).split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = None
    for header in headers:
        name, _, value = header.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ValueError(f"unsupported reply framing: transfer-encoding {value.strip()!r}")
    if length is None:
        raise ValueError("a reply without content-length")
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return status, bytes(buffer[end + 4 : total]), total


class _Generator:
    """What the connections share: the requests to send, the window, and what was measured."""

    def __init__(self, requests: list[bytes], wrap: bool) -> None:
        self.requests, self.wrap = requests, wrap
        self.sent = 0
        self.end = float("inf")
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.open = 0
        self.all_closed = asyncio.Event()

    def take(self) -> bytes | None:
        """The next request, or None once the window is over or (without wrap) the bodies are."""
        if time.perf_counter() >= self.end:
            return None
        if self.sent >= len(self.requests) and not self.wrap:
            self.error("bodies exhausted before the end of the window")
            return None
        request = self.requests[self.sent % len(self.requests)]
        self.sent += 1
        return request

    def record(self, sent_at: float, status: int, body: bytes) -> None:
        done = time.perf_counter()
        if done <= self.end:
            self.latencies.append(done - sent_at)
        if status != 200 or body != b"success":
            self.error(f"reply {status} {body[:80]!r}")

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message)

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0:
            self.all_closed.set()


class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight; any failure ends it, visibly."""

    def __init__(self, generator: _Generator) -> None:
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.in_flight = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not `assert isinstance(transport, asyncio.Transport)`: uvloop's transports are not
        # subclasses of it. That assert was the hang: it raised here, uvloop only logged it, and the
        # run awaited connections that would never send a request nor close.
        self.transport = cast(asyncio.Transport, transport)
        self.generator.open += 1

    def send(self) -> None:
        assert self.transport is not None
        request = self.generator.take()
        if request is None:
            self.closing = True
            self.transport.close()
            return
        self.in_flight = True
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            reply = parse_reply(self.buffer)
            if reply is None:
                return
            status, body, used = reply
            del self.buffer[:used]
            self.in_flight = False
            self.generator.record(self.sent_at, status, body)
            self.send()
        except Exception as e:  # an exception here would only be logged by the loop: make it count
            self.fail(f"{type(e).__name__}: {e}")

    def fail(self, message: str) -> None:
        self.generator.error(message)
        self.stop()

    def stop(self) -> None:
        self.in_flight, self.closing = False, True
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.generator.error(f"connection lost with a request in flight ({exc!r})")
        elif not self.closing:
            self.generator.error(f"connection closed by the server ({exc!r})")
        self.generator.closed()


def _percentile_ms(ordered: list[float], q: float) -> float:
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def _connect(generator: _Generator, port: int, connections: int) -> list[_Connection]:
    loop = asyncio.get_running_loop()

    async def one() -> _Connection:
        connect = loop.create_connection(lambda: _Connection(generator), "127.0.0.1", port)
        _, protocol = await asyncio.wait_for(connect, CONNECT_TIMEOUT)
        return protocol

    return list(await asyncio.gather(*(one() for _ in range(connections))))


async def drive(port: int, requests: list[bytes], wrap: bool, connections: int, seconds: float) -> Run:
    """Connect, then keep every connection busy for `seconds`; bounded by the window + REPLY_GRACE."""
    generator = _Generator(requests, wrap)
    links = await _connect(generator, port, connections)
    start, cpu_start = time.perf_counter(), time.process_time()
    generator.end = start + seconds
    cpu_at_end: list[float] = []
    asyncio.get_running_loop().call_later(seconds, lambda: cpu_at_end.append(time.process_time()))
    for link in links:
        link.send()
    try:
        await asyncio.wait_for(generator.all_closed.wait(), seconds + REPLY_GRACE)
    except TimeoutError:
        for link in links:
            if link.in_flight:
                link.fail(f"no reply within {REPLY_GRACE:g} s after the window")
            link.stop()
        await asyncio.wait_for(generator.all_closed.wait(), CONNECT_TIMEOUT)
    window = min(time.perf_counter(), generator.end) - start
    cpu = (cpu_at_end[0] if cpu_at_end else time.process_time()) - cpu_start
    for message in generator.error_samples:
        print(f"loadgen: {message}", file=sys.stderr)
    latencies = sorted(generator.latencies)
    return Run(requests=len(latencies), window_s=window, p50_ms=_percentile_ms(latencies, 0.50),
               p99_ms=_percentile_ms(latencies, 0.99), errors=generator.errors,
               client_cpu=cpu / window, consumed=generator.sent)  # fmt: skip


def _http_request(body: bytes) -> bytes:
    head = b"POST /shop/notify HTTP/1.1\r\nHost: bench\r\n"
    head += b"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def loadgen_main(argv: Sequence[str]) -> None:
    """`python -m bench.throughput loadgen ...`: one asyncio run; prints `LOADGEN_JSON {...}`."""
    p = argparse.ArgumentParser(prog="python -m bench.throughput loadgen")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bodies", type=Path, required=True, help="one body a line")
    p.add_argument("--first", type=int, default=1, help="1-based line to start from")
    p.add_argument("--wrap", action="store_true", help="start again at --first when the bodies run out")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args(argv)
    bodies = args.bodies.read_bytes().split(b"\n")[args.first - 1 :]
    requests = [_http_request(body) for body in bodies]
    try:
        import uvloop

        runner: Callable[..., Run] = uvloop.run
    except ImportError:
        runner = asyncio.run
    run = runner(drive(args.port, requests, args.wrap, args.connections, args.seconds))
    print("LOADGEN_JSON " + json.dumps(asdict(run)), flush=True)


def asyncio_load(load: Load) -> Run:
    command = [sys.executable, "-m", "bench.throughput", "loadgen", "--port", str(load.port),
               "--bodies", str(load.bodies_file), "--first", str(load.first),
               "--connections", str(load.connections), "--seconds", str(load.seconds)]  # fmt: skip
    if load.wrap:
        command.append("--wrap")
    return Run(**_summary_line(_generator_process(command, load).stdout, "LOADGEN_JSON "))


GENERATORS: dict[str, Callable[[Load], Run]] = {"wrk": wrk_load, "asyncio": asyncio_load}


def generator_description(name: str) -> str:
    if name == "wrk":
        return f"wrk {wrk_version()}, one thread (bench/wrk_bodies.lua)"
    return "asyncio protocols on uvloop, one request in flight per connection (bench.throughput loadgen)"


# -- the routes -----------------------------------------------------------------------------------


def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux), None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float | None:
    """Busy CPU seconds of the whole machine so far, all cores (Linux), None without /proc."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = ticks
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Cpu:
    """CPU seconds so far of the server, of the generators (reaped children) and of the machine."""

    server: float | None
    generators: float
    machine: float | None

    @classmethod
    def now(cls, server_pid: int) -> _Cpu:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(_process_cpu(server_pid), children.ru_utime + children.ru_stime, _machine_busy())

    def use_since(self, before: _Cpu, window: float) -> dict[str, float | None]:
        """The server's CPU use and the rest of the machine's (other processes, loopback softirq),
        in cores over the window: a server below ~100% with others near 0 was not the limit."""
        if self.server is None or before.server is None or self.machine is None or before.machine is None:
            return {"server_cpu_use": None, "others_cpu": None}
        server = self.server - before.server
        others = (self.machine - before.machine) - server - (self.generators - before.generators)
        return {"server_cpu_use": server / window, "others_cpu": others / window}


class Route:
    """One running server and the bodies it has not seen yet."""

    def __init__(self, kind: str, port: int, pid: int, bodies_file: Path, count: int) -> None:
        self.kind, self.port, self.pid, self.bodies_file, self.count = kind, port, pid, bodies_file, count
        self.first = 1
        self.rounds: list[dict[str, Any]] = []

    def load(
        self, generate: Callable[[Load], Run], args: argparse.Namespace, seconds: float
    ) -> dict[str, Any]:
        wrap = self.kind.removesuffix(BASE) not in DEDUPLICATING
        load = Load(self.port, self.bodies_file, self.first, wrap, args.connections, seconds, args.client_cpu)
        before = _Cpu.now(self.pid)
        run = generate(load)
        use = _Cpu.now(self.pid).use_since(before, run.window_s)
        if not wrap:
            self._use(run.consumed)
        return asdict(run) | {"rps": run.requests / run.window_s} | use

    def _use(self, consumed: int) -> None:
        left = self.count - self.first + 1
        if consumed >= left:
            raise RuntimeError(f"{self.kind}: the {self.count} bodies ran out (some may have been sent "
                               "twice): raise --notifications")  # fmt: skip
        self.first += consumed

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
            "client_cpu_rounds": [r["client_cpu"] for r in self.rounds],
            "server_cpu_use": middle["server_cpu_use"],
            "server_cpu_use_rounds": [r["server_cpu_use"] for r in self.rounds],
            "others_cpu_rounds": [r["others_cpu"] for r in self.rounds],
        }


# -- orchestration --------------------------------------------------------------------------------


def _read_cache(path: Path) -> tuple[AlipayKeys, list[bytes]]:
    data = json.loads(path.read_text())
    return AlipayKeys(data["private_pem"], data["public_pem"]), [b.encode() for b in data["bodies"]]


def cached_alipay(n: int) -> tuple[AlipayKeys, list[bytes]]:
    """`n` signed Alipay notifications and their key, kept in bench/.cache: signing costs ~1 ms each.
    The largest cache is reused, and extended (same key, new order numbers) when it is too short.
    Alipay has no replay window, so old ones stay valid."""
    cache_dir = BENCH_DIR / ".cache"
    sizes = {int(p.stem[7:]): p for p in cache_dir.glob("alipay-*.json") if p.stem[7:].isdigit()}
    if sizes:
        keys, bodies = _read_cache(sizes[max(sizes)])
    else:
        keys, bodies = AlipayKeys.generate(), []
    if len(bodies) >= n:
        return keys, bodies[:n]
    prefix = f"more{len(bodies)}" if bodies else "load"
    print(f"signing {n - len(bodies):,} Alipay notifications (once; cached in {cache_dir})", flush=True)
    bodies += alipay_bodies(keys, n - len(bodies), prefix, processes=os.cpu_count() or 1)
    cache_dir.mkdir(exist_ok=True)
    (cache_dir / ".gitignore").write_text("*\n")
    partial = cache_dir / f"alipay-{n}.partial"  # renamed when whole: other runs may be reading
    partial.write_text(json.dumps({"private_pem": keys.private_pem, "public_pem": keys.public_pem,
                                   "bodies": [b.decode() for b in bodies]}))  # fmt: skip
    partial.replace(cache_dir / f"alipay-{n}.json")
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


@contextmanager
def _server(kind: str, tmp: Path, args: argparse.Namespace) -> Iterator[tuple[int, int]]:
    """A uvicorn server for one route, pinned to `--server-cpu`: its (port, pid)."""
    port = _free_port()
    schema = f"pn_bench_t_{kind.replace(BASE, '_base')}_{time.time_ns()}"
    env = _child_env(BENCH_APP=kind.removesuffix(BASE), BENCH_PUBLIC_KEY=str(tmp / "public.pem"),
                     BENCH_DB=str(tmp / f"events-{kind}-{time.time_ns()}.db"),
                     BENCH_SCHEMA=schema)  # fmt: skip
    if kind.endswith(BASE):  # that tree's paynotify first, this tree's bench after it
        (tmp / "base").mkdir(exist_ok=True)
        if not (tmp / "base" / "paynotify").exists():
            (tmp / "base" / "paynotify").symlink_to(Path(args.base_tree).resolve() / "paynotify")
        env["PYTHONPATH"] = f"{tmp / 'base'}{os.pathsep}{env['PYTHONPATH']}"
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.throughput:make_app"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    command += ["--loop", args.loop, "--http", args.http]
    server = subprocess.Popen(command, env=env, preexec_fn=_pinned(args.server_cpu))
    try:
        _wait_port(port, server)
        yield port, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if "postgresql" in kind:
            _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', timeout=60)
        finally:
            await conn.close(timeout=10)

    asyncio.run(drop())


def _bodies_needed(args: argparse.Namespace) -> int:
    load_seconds = args.warmup + args.rounds * args.seconds
    return max(WRAP_BODIES, -(-int(load_seconds * BODIES_PER_SECOND) // 10_000) * 10_000)


def _bodies_file(path: Path, bodies: list[bytes]) -> tuple[Path, int]:
    path.write_bytes(b"\n".join(bodies))
    return path, len(bodies)


def choose_generator(name: str) -> str:
    if name == "auto":
        return "wrk" if shutil.which("wrk") else "asyncio"
    if name == "wrk" and shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), or --generator asyncio"
        )
    return name


def _round_line(routes: list[Route]) -> str:
    def one(route: Route) -> str:
        r = route.rounds[-1]
        server, others = (("?" if x is None else f"{x:.0%}") for x in (r["server_cpu_use"], r["others_cpu"]))
        cpu = f"server {server}, generator {r['client_cpu']:.0%}, others {others}"
        return f"{route.kind} {r['rps']:,.0f}/s (CPU {cpu})"

    return ", ".join(one(route) for route in routes)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn

    generator = choose_generator(args.generator)
    generate = GENERATORS[generator]
    keys, bodies = cached_alipay(args.notifications or _bodies_needed(args))
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        (tmp / "public.pem").write_text(keys.public_pem)
        files = {True: _bodies_file(tmp / "bodies.txt", bodies),
                 False: _bodies_file(tmp / "bodies-wrap.txt", bodies[:WRAP_BODIES])}  # fmt: skip
        kinds = list(args.routes)
        if args.base_tree:
            kinds += [f"{kind}{BASE}" for kind in args.routes if kind in PAYNOTIFY_ROUTES]
        routes = [Route(kind, *servers.enter_context(_server(kind, tmp, args)),
                        *files[kind.removesuffix(BASE) in DEDUPLICATING]) for kind in kinds]  # fmt: skip
        print(f"  generator: {generator}; warm-up {args.warmup:g} s per route", flush=True)
        for route in routes:
            route.load(generate, args, args.warmup)
        for r in range(args.rounds):
            for route in routes[r % len(routes) :] + routes[: r % len(routes)]:
                route.rounds.append(route.load(generate, args, args.seconds))
            print(f"  round {r + 1}: {_round_line(routes)}", flush=True)
    return {
        "machine": machine(),
        "uvicorn": uvicorn.__version__,
        "loop": args.loop,
        "http": args.http,
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "generator": generator_description(generator),
        "generator_kind": generator,
        "connections": args.connections,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "notifications": len(bodies),
        "load_seconds": time.monotonic() - started,
        "routes": {_route_name(route.kind, args.base_tree): route.summary() for route in routes},
    }


def _route_name(kind: str, base_tree: str | None) -> str:
    name = ROUTES[kind.removesuffix(BASE)]
    return f"{name} ({base_tree})" if kind.endswith(BASE) else name


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per route and round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per route first")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--notifications", type=int, default=0,
                   help="distinct signed bodies (cached); default: enough for the load seconds")  # fmt: skip
    p.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    p.add_argument("--generator", default="auto", choices=["auto", *GENERATORS],
                   help="auto: wrk if installed, else asyncio")  # fmt: skip
    p.add_argument("--loop", default="uvloop")
    p.add_argument("--http", default="httptools")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the raw results here")
    p.add_argument("--base-tree", help="also serve each paynotify route with this checkout's paynotify")
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
