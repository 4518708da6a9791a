"""The three brokers for the publisher tests: the shared servers (each test in its own stream,
exchange and queue, or key prefix, removed afterwards), and servers a test can stop and start.

NATS and Redis outages use a server of the test's own on a free port; RabbitMQ's goes through a TCP
proxy the test cuts, so the shared server stays up for everyone else. Unreachable servers skip the
tests saying how to enable them; with PAYNOTIFY_REQUIRE_SERVICES=1 (CI) they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from _store_backends import reachable

from paynotify.publishers import NatsPublisher, Publisher, RabbitMQPublisher, RedisStreamPublisher

NATS_URL = os.environ.get("PAYNOTIFY_TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("PAYNOTIFY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("PAYNOTIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BROKERS = ["nats", "rabbitmq", "redis"]
_URLS = {
    "nats": (NATS_URL, "PAYNOTIFY_TEST_NATS_URL"),
    "rabbitmq": (RABBITMQ_URL, "PAYNOTIFY_TEST_RABBITMQ_URL"),
    "redis": (REDIS_URL, "PAYNOTIFY_TEST_REDIS_URL"),
}
# 25 h, what NatsPublisher asks of a stream; shorter would log a warning at every connect.
DUPLICATE_WINDOW = 25 * 3600.0


def skip_or_fail(message: str) -> None:
    if os.environ.get("PAYNOTIFY_REQUIRE_SERVICES"):
        pytest.fail(message)  # CI starts the services: a skip there would hide a broken setup
    pytest.skip(message)


def require(broker: str) -> str:
    url, var = _URLS[broker]
    if not reachable(url):
        skip_or_fail(
            f"{broker} is not reachable at {url}: start it (bash .ci/run does) or point {var} at one"
        )
    return url


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed: bash .ci/run installs it (apt-get install {name})")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One message as a consumer gets it."""

    event_id: str  # the broker's own message id: Nats-Msg-Id, AMQP message_id, the entry's event_id
    headers: dict[str, str]
    body: bytes
    where: str  # the NATS subject, the AMQP routing key, the Redis stream
    persistent: bool = True  # AMQP delivery mode 2 (JetStream file storage and Redis: the test's setup)


class Broker(Protocol):
    """One broker target for one test: a publisher to it and what consumers received from it."""

    kind: str

    def publisher(self, **options: Any) -> Publisher[Any]: ...
    async def received(self) -> list[Received]: ...


# -- NATS --------------------------------------------------------------------------------------


class NatsTarget:
    kind = "nats"

    def __init__(self, url: str) -> None:
        self.url = url
        tag = secrets.token_hex(4)
        self.stream = f"PN_TEST_{tag}"
        self.prefix = f"pntest_{tag}"

    def publisher(self, **options: Any) -> NatsPublisher:
        subject = self.prefix + ".{provider}.{account}.{kind}.{status}"
        return NatsPublisher(self.url, subject=subject, stream=self.stream, **options)

    async def _js(self) -> Any:
        import nats

        client = await nats.connect(self.url, allow_reconnect=False, connect_timeout=2)
        return client, client.jetstream()

    async def create(self, duplicate_window: float = DUPLICATE_WINDOW) -> None:
        from nats.js.api import StorageType

        client, js = await self._js()
        try:
            await js.add_stream(
                name=self.stream,
                subjects=[f"{self.prefix}.>"],
                duplicate_window=duplicate_window,
                storage=StorageType.FILE,
            )
        finally:
            await client.close()

    async def delete(self) -> None:
        client, js = await self._js()
        try:
            await js.delete_stream(self.stream)
        finally:
            await client.close()

    async def received(self) -> list[Received]:
        client, js = await self._js()
        try:
            info = await js.stream_info(self.stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(self.stream, seq)
                headers = dict(msg.headers or {})
                out.append(Received(headers.pop("Nats-Msg-Id"), headers, msg.data or b"", msg.subject))
            return out
        finally:
            await client.close()


# -- RabbitMQ ----------------------------------------------------------------------------------


class RabbitMQTarget:
    kind = "rabbitmq"

    def __init__(self, url: str) -> None:
        self.url = url
        self.exchange = self.queue = f"pn_test_{secrets.token_hex(4)}"
        self._seen: list[Received] = []

    def publisher(self, **options: Any) -> RabbitMQPublisher:
        return RabbitMQPublisher(options.pop("url", self.url), exchange=self.exchange, **options)

    async def create(self, *, bind: bool = True) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=5)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.queue, durable=True)
            if bind:
                await queue.bind(exchange, "#")

    async def delete(self) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=5)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(self.queue)
            await channel.exchange_delete(self.exchange)

    async def received(self) -> list[Received]:
        """Everything consumed from the queue so far (a queue hands each message out once)."""
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=5)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(self.queue, ensure=True)
            while (msg := await queue.get(no_ack=True, fail=False)) is not None:
                headers = {k: str(v) for k, v in (msg.headers or {}).items()}
                assert msg.message_id is not None
                persistent = msg.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                assert msg.routing_key is not None
                self._seen.append(Received(msg.message_id, headers, msg.body, msg.routing_key, persistent))
        return list(self._seen)


# -- Redis -------------------------------------------------------------------------------------


class RedisTarget:
    kind = "redis"

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"pn_test_{secrets.token_hex(4)}"
        self.stream = f"{self.prefix}:payments"

    def publisher(self, **options: Any) -> RedisStreamPublisher:
        return RedisStreamPublisher(self.url, stream=self.stream, **options)

    async def create(self) -> None:
        return None  # XADD creates the stream

    async def delete(self) -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(self.url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{self.prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    async def received(self) -> list[Received]:
        from redis.asyncio import Redis

        client = Redis.from_url(self.url)
        try:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(self.stream)  # type: ignore[assignment]
        finally:
            await client.aclose()
        out = []
        for _, raw in entries:
            fields = {k.decode(): v for k, v in raw.items()}
            body = fields.pop("body")
            headers = {k: v.decode() for k, v in fields.items()}
            out.append(Received(headers["event_id"], headers, body, self.stream))
        return out


Target = NatsTarget | RabbitMQTarget | RedisTarget


def target(broker: str, url: str | None = None) -> Target:
    base = url or require(broker)
    if broker == "nats":
        return NatsTarget(base)
    if broker == "rabbitmq":
        return RabbitMQTarget(base)
    return RedisTarget(base)


@contextlib.asynccontextmanager
async def created(t: Target) -> AsyncIterator[Target]:
    await t.create()
    try:
        yield t
    finally:
        await t.delete()


# -- servers a test stops and starts -----------------------------------------------------------


class Outage(Protocol):
    url: str

    async def stop(self) -> None: ...
    async def start(self) -> None: ...


def _wait_listening(port: int, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not reachable(f"tcp://127.0.0.1:{port}"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s")
        time.sleep(0.05)


class OwnServer:
    """A nats-server or redis-server of the test's own, killed (SIGKILL: a crash, not a shutdown)
    and started again on the same port over the same data directory."""

    def __init__(self, broker: str, data: Path) -> None:
        self.broker = broker
        self.port = free_port()
        self.data = data
        self.data.mkdir(parents=True, exist_ok=True)
        scheme = "nats" if broker == "nats" else "redis"
        self.url = f"{scheme}://127.0.0.1:{self.port}" + ("/0" if broker == "redis" else "")
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        if self.broker == "nats":
            binary = require_binary("nats-server")
            return [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.data)]
        binary = require_binary("redis-server")
        # appendfsync always: a reply means the entry is on disk, so a kill loses no acknowledged one.
        return [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(self.data),
        ]

    async def start(self) -> None:
        log = (self.data / "server.log").open("ab")
        self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        log.close()
        await asyncio.to_thread(_wait_listening, self.port, self.broker)

    async def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.process.wait)
            self.process = None


class CutProxy:
    """A TCP proxy to a shared server: `stop` closes its port and every connection through it,
    `start` opens the port again. The server behind it never notices beyond lost connections."""

    def __init__(self, upstream: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self.port = free_port()
        self.url = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{self.port}").geturl()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _pipe(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(copy(client_reader, server_writer), copy(server_reader, client_writer))
        self._writers -= {client_writer, server_writer}
