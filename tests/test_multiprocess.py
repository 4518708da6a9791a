"""Issue 3, durable delivery across many app instances, tested with real servers and real stores.

- Two `paynotify serve` processes (uvicorn) share one store (SQLite on this host, PostgreSQL, Redis).
  A provider played by an asyncio client sends every notification of a bounded load to BOTH at once,
  as a load balancer does on retries, and retries each copy that was not acknowledged on a compressed
  schedule. One server is killed with SIGKILL a third of the way through and restarted on its port.
  Afterwards every notification was acknowledged, every event is DONE in the store, each subscriber
  saw each event, and a subscriber ran twice on an event only when the killed process had run it
  first (a side effect its death left without a completion record). Counts are printed (`pytest -s`)
  and are in every assertion message.
- Two Notifiers in one process, on two connections to one store, handling the same notifications
  concurrently: each subscriber runs once per event.
- A store that goes away (a TCP proxy in front of PostgreSQL or Redis that the test cuts, never the
  shared server itself; a locked or missing SQLite file) turns acknowledgements into failure replies,
  and everything is acknowledged and delivered once it is back.

Backends that are not reachable skip with the message of _store_backends.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from _multiprocess_subscribers import FAILED, OK, crm_fails_first, parse_record
from _store_backends import backend_stores, drop, isolated_url
from conftest import APP_ID, SECRET, example_notify

from paynotify import (
    Delivery,
    EventState,
    InboundRequest,
    Kind,
    Notifier,
    PaymentResult,
    Reply,
    Store,
    make_event_id,
    open_store,
)

TESTS = Path(__file__).parent
SERVER_BACKENDS = ["sqlite", "postgresql", "redis"]
DELIVERIES = ["inline", "queued"]
SUBSCRIBERS = ("ship", "crm")

NOTIFICATIONS = 240
LAUNCH_EVERY = 0.02
"""Seconds between two notifications: the load takes about NOTIFICATIONS * LAUNCH_EVERY seconds."""
KILL_AFTER = NOTIFICATIONS // 3
RESTART_AFTER = 0.5
"""Seconds the killed server stays down before it is started again on its port."""
LEASE_SECONDS = 2.0
RACE_LEASE_SECONDS = 120.0
LINGER = 0.03
"""Seconds `ship` lingers after its side effect: the window a SIGKILL catches it in."""
RETRY_SCHEDULE = (0.2, 0.5, 1.0, 2.0)
"""The provider's retry delays, compressed (real providers wait minutes to hours); then every 2 s."""
PROVIDER_DEADLINE = 45.0
"""Seconds after which the provider gives up on a copy; far more than a passing run needs."""
SETTLE_DEADLINE = 30.0
"""Seconds to wait, after the provider is done, for queued events to be DONE."""

CONFIG = """\
store = {store}
delivery = "{delivery}"
lease_seconds = {lease}
backoff_seconds = 0.1
max_backoff_seconds = 1.0
concurrency = 8
subscribers = [
    {{ target = "_multiprocess_subscribers:ship", name = "ship" }},
    {{ target = "_multiprocess_subscribers:crm", name = "crm" }},
]

[accounts.shop]
provider = "examplepay"
app_id = "{app_id}"
secret_env = "PAYNOTIFY_MP_SECRET"
"""


def event_id_of(order_id: str) -> str:
    """The event id ExamplePay gives `example_notify(order_id)`."""
    return make_event_id("shop", Kind.PAYMENT, f"txn-{order_id}", None, "paid")


def is_ack(status: int, body: bytes) -> bool:
    return status == 200 and body == b"OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def open_log(path: Path) -> int:
    """A descriptor the child writes its log to (appending: a restarted server adds to it)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


async def wait_until(
    condition: Callable[[], Awaitable[bool]], within: float, what: str, every: float = 0.1
) -> float:
    """Poll `condition` until it holds; returns the seconds it took."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - start


# -- real servers ------------------------------------------------------------------------------


@dataclass
class Server:
    """One `paynotify serve` process on a fixed port; it can be killed and started again there."""

    name: str
    port: int
    config: Path
    log: Path
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    pids: list[int] = field(default_factory=list)

    async def start(self, within: float = 20.0) -> None:
        fd = open_log(self.log)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "paynotify",
                "serve",
                "--config",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=fd,
            )
        finally:
            os.close(fd)
        self.pids.append(self.proc.pid)
        proc = self.proc

        async def accepting() -> bool:
            if proc.returncode is not None:
                raise AssertionError(
                    f"server {self.name} exited with {proc.returncode} while starting:\n{tail(self.log)}"
                )
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True

        await wait_until(accepting, within, f"server {self.name} to accept connections", every=0.05)

    async def kill(self) -> int:
        """SIGKILL: no shutdown, no lifespan, no last words. Returns the pid killed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        return self.proc.pid

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- the provider ------------------------------------------------------------------------------


@dataclass
class CopyState:
    """One copy of one notification, sent to one server until it is acknowledged."""

    requests: int = 0
    acked_at: float | None = None


@dataclass
class ProviderStats:
    requests: int = 0
    acks: int = 0
    retry_replies: int = 0
    connection_errors: int = 0
    other_replies: Counter[int] = field(default_factory=Counter)


class Provider:
    """The payment provider: every notification to every server at once, each copy retried until
    acknowledged (connection errors are failures too) on a compressed schedule, until a deadline."""

    def __init__(self, client: httpx.AsyncClient, servers: Sequence[Server], orders: Sequence[str]) -> None:
        self.client = client
        self.servers = servers
        self.notifications = [example_notify(order) for order in orders]
        self.copies = [[CopyState() for _ in servers] for _ in orders]
        self.stats = ProviderStats()
        self.deadline = time.monotonic() + PROVIDER_DEADLINE

    async def send(self, index: int) -> None:
        await asyncio.gather(*(self._copy(index, s) for s in range(len(self.servers))))

    async def _copy(self, index: int, server: int) -> None:
        headers, body = self.notifications[index]
        state = self.copies[index][server]
        delays = iter(RETRY_SCHEDULE)
        while True:
            state.requests += 1
            self.stats.requests += 1
            try:
                url = f"http://127.0.0.1:{self.servers[server].port}/shop/notify"
                reply = await self.client.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                self.stats.connection_errors += 1
            else:
                if is_ack(reply.status_code, reply.content):
                    state.acked_at = time.monotonic()
                    self.stats.acks += 1
                    return
                if reply.status_code == 400 and reply.content == b"RETRY":
                    self.stats.retry_replies += 1
                else:
                    self.stats.other_replies[reply.status_code] += 1
            if time.monotonic() > self.deadline:
                return
            await asyncio.sleep(next(delays, RETRY_SCHEDULE[-1]))

    async def run_with_a_kill(self, victim: Server) -> tuple[int, set[int]]:
        """Send every notification, one every LAUNCH_EVERY seconds; after KILL_AFTER of them, SIGKILL
        `victim` (the first server) and start it again RESTART_AFTER seconds later, sending on
        meanwhile. Returns the pid killed and the notifications it held (sent to it, unacknowledged)."""
        tasks: list[asyncio.Task[None]] = []
        killed_pid, held = 0, set[int]()

        async def restart_later() -> None:
            await asyncio.sleep(RESTART_AFTER)
            await victim.start()

        try:
            for i in range(len(self.notifications)):
                if i == KILL_AFTER:
                    killed_pid = await victim.kill()
                    held = self.unacknowledged(self.servers.index(victim))
                    tasks.append(asyncio.create_task(restart_later()))
                tasks.append(asyncio.create_task(self.send(i)))
                await asyncio.sleep(LAUNCH_EVERY)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return killed_pid, held

    def unacknowledged(self, server: int) -> set[int]:
        """Notifications whose copy was sent to `server` and not acknowledged by it (yet)."""
        return {
            i
            for i, copies in enumerate(self.copies)
            if copies[server].requests and not copies[server].acked_at
        }


# -- what the subscribers did ----------------------------------------------------------------------


@dataclass
class Deliveries:
    """The record file, per (subscriber, event): the pids of the successful calls, in order."""

    ok: dict[tuple[str, str], list[int]]
    failed: Counter[str]
    strangers: set[str]

    @classmethod
    def read(cls, path: Path, event_ids: Iterable[str]) -> Deliveries:
        known = set(event_ids)
        ok: dict[tuple[str, str], list[int]] = defaultdict(list)
        failed: Counter[str] = Counter()
        strangers: set[str] = set()
        text = path.read_text() if path.exists() else ""
        for event_id, subscriber, pid, outcome in parse_record(text):
            if event_id not in known:
                strangers.add(event_id)
            if outcome == OK:
                ok[(subscriber, event_id)].append(pid)
            else:
                assert outcome == FAILED, outcome
                failed[subscriber] += 1
        return cls(dict(ok), failed, strangers)

    def count(self, subscriber: str) -> int:
        return sum(len(pids) for (name, _), pids in self.ok.items() if name == subscriber)

    def missing(self, event_ids: Iterable[str]) -> list[tuple[str, str]]:
        return [(s, e) for e in event_ids for s in SUBSCRIBERS if not self.ok.get((s, e))]

    def repeats(self) -> dict[tuple[str, str], list[int]]:
        return {key: pids for key, pids in self.ok.items() if len(pids) > 1}


def repeat_count(repeats: dict[tuple[str, str], list[int]]) -> int:
    return sum(len(pids) - 1 for pids in repeats.values())


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("backend", SERVER_BACKENDS)
async def test_two_servers_one_killed_deliver_every_notification(
    backend: str, delivery: Delivery, tmp_path: Path
) -> None:
    started = time.monotonic()
    url = isolated_url(backend, tmp_path)  # skips when the server backend is unreachable
    check = open_store(url)
    record, markers = tmp_path / "calls.log", tmp_path / "markers"
    markers.mkdir()
    config = tmp_path / "paynotify.toml"
    config.write_text(
        CONFIG.format(store=json.dumps(url), delivery=delivery, lease=LEASE_SECONDS, app_id=APP_ID)
    )
    pythonpath = [str(TESTS), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "PAYNOTIFY_MP_SECRET": SECRET,
        "PAYNOTIFY_MP_RECORD": str(record),
        "PAYNOTIFY_MP_MARKERS": str(markers),
        "PAYNOTIFY_MP_LINGER": str(LINGER),
    }
    servers = [Server(n, free_port(), config, tmp_path / f"server-{n}.log", env) for n in ("a", "b")]
    victim = servers[0]
    orders = [f"mp-{i:04d}" for i in range(NOTIFICATIONS)]
    event_ids = [event_id_of(o) for o in orders]

    try:
        await check.open()  # creates the schema once, before two servers race to
        await asyncio.gather(*(s.start() for s in servers))
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=15.0, limits=limits, trust_env=False) as client:
            provider = Provider(client, servers, orders)
            killed_pid, held = await provider.run_with_a_kill(victim)
        provider_done = time.monotonic()

        unacked = [
            orders[i] for i, copies in enumerate(provider.copies) if not any(c.acked_at for c in copies)
        ]

        async def all_done() -> bool:
            done = await check.find(states=[EventState.DONE], limit=NOTIFICATIONS * 2)
            return {e.event_id for e in done} >= set(event_ids)

        settled = None
        with contextlib.suppress(AssertionError):
            settled = await wait_until(all_done, SETTLE_DEADLINE, "every event to be DONE", every=0.2)
        not_done = [
            f"{e}: {stored.state.value if stored else 'absent'}"
            for e in event_ids
            if (stored := await check.get(e)) is None or stored.state is not EventState.DONE
        ]
    finally:
        await asyncio.gather(*(s.stop() for s in servers))
        await check.close()
        await drop(backend, url)

    calls = Deliveries.read(record, event_ids)
    repeats = calls.repeats()
    held_events = {event_ids[i] for i in held}
    # The allowed kind: the first successful call came from the killed process, which died before the
    # store recorded it; with inline delivery the event was also in a request it never answered.
    from_kill = {
        key: pids
        for key, pids in repeats.items()
        if pids[0] == killed_pid and (delivery == "queued" or key[1] in held_events)
    }
    unexplained = {key: pids for key, pids in repeats.items() if key not in from_kill}
    touched_by_victim = {e for (_, e), pids in calls.ok.items() if killed_pid in pids}
    acked_notifications = NOTIFICATIONS - len(unacked)
    planned_failures = sum(crm_fails_first(e) for e in event_ids)
    stats = provider.stats
    summary = (
        f"[{backend}/{delivery}] {NOTIFICATIONS} notifications x 2 servers:"
        f" {acked_notifications} acknowledged"
        f" ({stats.acks} copies acked; {stats.requests} requests, {stats.retry_replies} retry replies,"
        f" {stats.connection_errors} connection errors, other {dict(stats.other_replies)});"
        f" deliveries ship={calls.count('ship')} crm={calls.count('crm')}"
        f" (+{calls.failed['crm']} failed crm first attempts, {planned_failures} planned);"
        f" repeats={repeat_count(repeats)}, attributable to the kill={repeat_count(from_kill)}"
        f" (pid {killed_pid} killed after {KILL_AFTER} notifications"
        f" holding {len(held)} unacknowledged copies,"
        f" its subscribers had run on {len(touched_by_victim)} events);"
        f" provider {provider_done - started:.1f} s,"
        f" settled {'never' if settled is None else f'{settled:.1f} s'},"
        f" total {time.monotonic() - started:.1f} s"
    )
    print("\n" + summary)
    logs = "\n".join(f"--- server {s.name} (pids {s.pids}):\n{tail(s.log)}" for s in servers)

    assert killed_pid, summary
    assert len(victim.pids) == 2, summary
    assert not unacked, f"{summary}\nnever acknowledged: {unacked[:10]}\n{logs}"
    assert not not_done, f"{summary}\nnot DONE in the store: {not_done[:10]}\n{logs}"
    assert not calls.missing(event_ids), (
        f"{summary}\nnever delivered: {calls.missing(event_ids)[:10]}\n{logs}"
    )
    assert not calls.strangers, f"{summary}\nunknown events delivered: {sorted(calls.strangers)[:5]}"
    assert not unexplained, (
        f"{summary}\nrepeats not explained by the kill ((subscriber, event): pids of the calls): "
        f"{dict(list(unexplained.items())[:10])}\n"
        f"held by the killed process: {sorted(held_events)[:10]}\n{logs}"
    )
    assert calls.failed["crm"] <= planned_failures, summary
    assert time.monotonic() - started < 90, summary


# -- two Notifiers in one process ---------------------------------------------------------------


def inbound(order_id: str) -> InboundRequest:
    headers, body = example_notify(order_id)
    return InboundRequest("POST", "notify", headers, b"", body)


async def until_acked(
    notifier: Notifier, order_id: str, *, within: float = 20.0, every: float = 0.05
) -> tuple[int, list[Reply]]:
    """Handle the notification until it is acknowledged, as a provider retries; (attempts, replies)."""
    replies: list[Reply] = []
    deadline = time.monotonic() + within
    while True:
        reply = await notifier.handle("shop", inbound(order_id))
        replies.append(reply)
        if is_ack(reply.status, reply.body):
            return len(replies), replies
        assert time.monotonic() < deadline, f"{order_id} never acknowledged: {replies[-3:]}"
        await asyncio.sleep(every)


def recording_notifier(
    store: Store, delivery: Delivery, calls: list[tuple[str, str, int]], tag: int
) -> Notifier:
    # Nobody dies in this race: the lease outlasts any delivery on a loaded machine, so a repeat can
    # only come from the race itself. (With 2 s, 200 concurrent deliveries on a busy CI box outlived
    # their leases and were taken over: at-least-once by design, not what this test is about.)
    notifier = Notifier(store, delivery=delivery, lease_seconds=RACE_LEASE_SECONDS)
    notifier.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)

    async def ship(result: PaymentResult) -> None:
        calls.append((result.event_id, "ship", tag))
        await asyncio.sleep(0.002)  # let the other Notifier's copy arrive while this one runs

    async def crm(result: PaymentResult) -> None:
        calls.append((result.event_id, "crm", tag))

    notifier.subscribe(ship, name="ship")
    notifier.subscribe(crm, name="crm")
    return notifier


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("backend", SERVER_BACKENDS)
async def test_two_notifiers_on_one_store_dispatch_each_event_once(
    backend: str, delivery: Delivery, tmp_path: Path
) -> None:
    count = 100
    orders = [f"pair-{i:03d}" for i in range(count)]
    event_ids = {event_id_of(o) for o in orders}
    calls: list[tuple[str, str, int]] = []
    async with backend_stores(backend, tmp_path) as make:
        pair = [recording_notifier(make(), delivery, calls, tag) for tag in (0, 1)]
        async with pair[0], pair[1]:
            attempts = await asyncio.gather(*(until_acked(n, o) for o in orders for n in pair))
            if delivery == "queued":

                async def delivered() -> bool:
                    return len(calls) >= 2 * count

                await wait_until(delivered, 20, "the dispatchers to deliver every event", every=0.05)
                await asyncio.sleep(0.3)  # time for a second delivery to show, if there were one
            stored = await pair[0].store.find(states=[EventState.DONE], limit=2 * count)

    per_key = Counter((e, s) for e, s, _ in calls)
    by_notifier = Counter(tag for _, s, tag in calls if s == "ship")
    retries = sum(n for n, _ in attempts) - len(attempts)
    summary = (
        f"[{backend}/{delivery}] {count} notifications x 2 Notifiers: {len(attempts)} acks after"
        f" {retries} retry replies; {len(calls)} subscriber calls (ship by Notifier: {dict(by_notifier)})"
    )
    print("\n" + summary)
    assert {e for e, _ in per_key} == event_ids, summary
    assert all(per_key[(e, s)] == 1 for e in event_ids for s in SUBSCRIBERS), (
        f"{summary}\nrepeated: {[k for k, n in per_key.items() if n > 1][:10]}"
    )
    assert {e.event_id for e in stored} == event_ids, summary


# -- outages -----------------------------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy in front of a database server, so a test can take the database away from a store
    (stop listening, drop every connection) and give it back, without touching the shared server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    async def cut(self) -> None:
        """The database is gone: connecting is refused and every open connection is dropped."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the aborted connections' handlers run

    async def restore(self) -> None:
        """The database is back, on the same address."""
        await self.start()

    @property
    def is_cut(self) -> bool:
        return self._server is None


def through(url: str, port: int) -> str:
    """`url` with its port replaced (to go through a proxy)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo + '@' if userinfo else ''}{parts.hostname}:{port}"
    return parts._replace(netloc=netloc).geturl()


@contextlib.asynccontextmanager
async def proxied_store(backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, CuttableProxy]]:
    real = isolated_url(backend, tmp_path)
    target = urlsplit(real)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 0)
    await proxy.start()
    try:
        yield through(real, proxy.port), proxy
    finally:
        await proxy.cut()
        await drop(backend, real)


async def timed_handle(notifier: Notifier, order_id: str) -> tuple[Reply, float]:
    start = time.monotonic()
    reply = await notifier.handle("shop", inbound(order_id))
    return reply, time.monotonic() - start


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("backend", ["postgresql", "redis"])
async def test_a_cut_database_turns_acks_into_failure_replies_until_it_is_back(
    backend: str, delivery: Delivery, tmp_path: Path
) -> None:
    calls: list[tuple[str, str]] = []
    async with proxied_store(backend, tmp_path) as (url, proxy):
        notifier = Notifier(
            url, delivery=delivery, lease_seconds=LEASE_SECONDS, backoff_seconds=0.05, max_backoff_seconds=0.2
        )
        notifier.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
        cut_in_crm: set[str] = set()  # events on which crm takes the database away after its side effect

        async def ship(result: PaymentResult) -> None:
            calls.append((result.event_id, "ship"))

        async def crm(result: PaymentResult) -> None:
            calls.append((result.event_id, "crm"))
            if result.event_id in cut_in_crm:
                cut_in_crm.discard(result.event_id)
                await proxy.cut()

        notifier.subscribe(ship, name="ship")
        notifier.subscribe(crm, name="crm")

        def delivered(order_id: str) -> Counter[str]:
            return Counter(s for e, s in calls if e == event_id_of(order_id))

        async def wait_delivered(order_id: str, expected: Counter[str]) -> None:
            async def done() -> bool:
                stored = await notifier.store.get(event_id_of(order_id))
                return stored is not None and stored.state is EventState.DONE

            await wait_until(done, 15, f"{order_id} to be DONE")
            assert delivered(order_id) == expected

        async with notifier:
            # Before: acknowledged (and, queued, delivered).
            assert (await until_acked(notifier, "before"))[0] == 1
            await wait_delivered("before", Counter(ship=1, crm=1))

            # The database goes away: a new event and a duplicate of a done one both get "retry later".
            await proxy.cut()
            during = [await timed_handle(notifier, order) for order in ("during", "before", "during")]
            assert [(r.status, r.body) for r, _ in during] == [(400, b"RETRY")] * 3, during
            slowest_failure = max(seconds for _, seconds in during)
            assert slowest_failure < 5, f"a failure reply took {slowest_failure:.1f} s"
            assert delivered("during") == Counter()
            if delivery == "queued":
                await asyncio.sleep(1.2)  # the dispatcher polls through the outage and survives it

            # Back: no restart, the next attempts are acknowledged and delivered once.
            await proxy.restore()
            attempts_after, _ = await until_acked(notifier, "during", within=10)
            await wait_delivered("during", Counter(ship=1, crm=1))
            assert (await until_acked(notifier, "before"))[0] == 1
            assert delivered("before") == Counter(ship=1, crm=1)

            # The database goes away after the subscribers ran and before the event is recorded DONE:
            # no acknowledgement (inline), the lease runs out, the retry runs only what did not succeed.
            cut_in_crm.add(event_id_of("midway"))
            reply, _ = await timed_handle(notifier, "midway")
            if delivery == "inline":
                assert (reply.status, reply.body) == (400, b"RETRY")
            else:
                assert is_ack(reply.status, reply.body)  # recorded before the dispatcher ran it

                async def crm_ran() -> bool:
                    return delivered("midway")["crm"] >= 1

                await wait_until(crm_ran, 10, "the dispatcher to run crm on midway", every=0.02)
            assert proxy.is_cut
            await asyncio.sleep(0.3)
            await proxy.restore()
            midway_attempts, _ = await until_acked(notifier, "midway", within=15, every=0.2)
            await wait_delivered("midway", Counter(ship=1, crm=2))

    print(
        f"\n[{backend}/{delivery}] cut: 3 failure replies (slowest {slowest_failure * 1000:.0f} ms);"
        f" back: acknowledged at attempt {attempts_after}; cut after the subscribers ran: acknowledged at"
        f" attempt {midway_attempts}, crm ran twice, ship once"
    )


async def test_a_locked_sqlite_store_turns_acks_into_failure_replies_until_it_is_unlocked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    calls: list[str] = []
    notifier = Notifier(f"sqlite:///{path}", lease_seconds=LEASE_SECONDS)
    notifier.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    notifier.subscribe(lambda result: calls.append(result.event_id), name="ship")
    async with notifier:
        assert (await until_acked(notifier, "before"))[0] == 1
        # Another process holds the write lock past SQLite's busy timeout (10 s in SQLiteStore).
        locker = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            locker.execute("BEGIN IMMEDIATE")
            reply, seconds = await timed_handle(notifier, "during")
        finally:
            locker.rollback()
            locker.close()
        assert (reply.status, reply.body) == (400, b"RETRY")
        assert calls == [event_id_of("before")]
        attempts, _ = await until_acked(notifier, "during", within=5)
        assert attempts == 1
        assert (await until_acked(notifier, "before"))[0] == 1
    assert calls == [event_id_of("before"), event_id_of("during")]
    print(f"\n[sqlite/inline] locked: failure reply after {seconds:.1f} s; unlocked: acknowledged at once")


async def test_an_sqlite_store_that_cannot_be_opened_refuses_until_it_can(tmp_path: Path) -> None:
    volume = tmp_path / "volume"  # not there yet, like a volume that is not mounted
    calls: list[str] = []
    notifier = Notifier(f"sqlite:///{volume / 'events.db'}", lease_seconds=LEASE_SECONDS)
    notifier.add_account("shop", "examplepay", app_id=APP_ID, secret=SECRET)
    notifier.subscribe(lambda result: calls.append(result.event_id), name="ship")
    try:
        for _ in range(2):
            reply = await notifier.handle("shop", inbound("o-1"))
            assert (reply.status, reply.body) == (400, b"RETRY")
        assert calls == []
        volume.mkdir()
        assert (await until_acked(notifier, "o-1"))[0] == 1
        assert (await until_acked(notifier, "o-1"))[0] == 1
    finally:
        await notifier.aclose()
    assert calls == [event_id_of("o-1")]
