"""Shared by every part: the machine's description, a direct ASGI call, interleaved timing."""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import inspect
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Headers = list[tuple[bytes, bytes]]
Request = tuple[Headers, bytes]
"""One notification as an HTTP POST would carry it: lower-case header pairs and the body bytes."""

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]], Awaitable[None]
]
Runner = Callable[[], Awaitable[None] | None]
"""A contender's whole batch: a plain call, or a coroutine function run on the benchmark's loop."""

BENCH_DIR = Path(__file__).resolve().parent


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        memory = "?"
    versions = {}
    for package in ("cryptography", "starlette", "uvicorn", "pydantic", "uvloop", "httptools", "asyncpg",
                    "redis", "python-alipay-sdk", "wechatpy", "wechatpayv3", "xmltodict"):  # fmt: skip
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "-"
    from cryptography.hazmat.backends.openssl.backend import backend

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "openssl": backend.openssl_version_text(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


# -- calling an ASGI app directly (no HTTP) --------------------------------------------------------


def scope_template(path: str, method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
    }


async def asgi_call(
    app: ASGIApp, template: Mapping[str, Any], headers: Headers, body: bytes
) -> tuple[int, bytes]:
    """One request through `app` as a server would make it; returns (status, body)."""
    scope = dict(template)
    scope["headers"] = [*headers, (b"content-length", b"%d" % len(body))]
    received = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def asgi_batch(
    app: ASGIApp, path: str, requests: Sequence[Request], check: Callable[[int, bytes], bool]
) -> Callable[[], Awaitable[None]]:
    """A runner sending every request through `app` in turn, checking each reply."""
    template = scope_template(path)

    async def run() -> None:
        for headers, body in requests:
            status, reply = await asgi_call(app, template, headers, body)
            if not check(status, reply):
                raise AssertionError(f"unexpected reply {status} {reply[:200]!r}")

    return run


# -- interleaved timing ----------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    run: Runner
    setup: Callable[[], None] | None = None
    """Called before every timed round, outside the timing (e.g. a fresh memory store)."""
    reference: bool = False
    """A reference row (a floor, a primitive), shown without a target."""


@dataclass
class Timing:
    name: str
    rounds_us: list[float] = field(default_factory=list)
    """Microseconds per notification, one entry per round."""
    reference: bool = False

    @property
    def best(self) -> float:
        return min(self.rounds_us)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds_us)

    def as_dict(self) -> dict[str, Any]:
        return {"best_us": self.best, "median_us": self.median, "rounds_us": self.rounds_us,
                "reference": self.reference}  # fmt: skip


def interleave(
    contenders: Sequence[Contender], n: int, rounds: int, loop: asyncio.AbstractEventLoop
) -> dict[str, Timing]:
    """Every round runs each contender once over the same `n` notifications, in a rotated order
    (so no contender always follows the same one); a round's time / n is one sample.

    GC: collected before each timed batch, enabled during it (the pipeline's allocations are part
    of its cost). Timer: perf_counter_ns.
    """
    timings = {c.name: Timing(c.name, reference=c.reference) for c in contenders}
    # One untimed warm-up round: imports, caches, lazily opened stores.
    for contender in contenders:
        _once(contender, loop)
    # The harness's own heap (every contender's prepared notifications, the SDKs' objects) is set
    # aside from collection: otherwise whichever contender happens to trigger a full collection pays
    # for walking all of it, which is the harness's cost, not the contender's.
    gc.collect()
    gc.freeze()
    try:
        for r in range(rounds):
            order = list(contenders[r % len(contenders) :]) + list(contenders[: r % len(contenders)])
            for contender in order:
                timings[contender.name].rounds_us.append(_once(contender, loop) / n / 1000)
    finally:
        gc.unfreeze()
    return timings


def _once(contender: Contender, loop: asyncio.AbstractEventLoop) -> int:
    if contender.setup is not None:
        contender.setup()
    gc.collect()
    started = time.perf_counter_ns()
    outcome = contender.run()
    if inspect.isawaitable(outcome):
        loop.run_until_complete(outcome)
    return time.perf_counter_ns() - started


def new_loop() -> asyncio.AbstractEventLoop:
    """The event loop uvicorn would use: uvloop when installed."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
