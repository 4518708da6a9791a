"""A webhook receiver of the tests' own on 127.0.0.1, failing in scripted ways: raw HTTP/1.1 over
asyncio streams, so it can hang, trickle a body, redirect or answer without end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """What the sink does with a request: `status` (with `headers`), then `body`; `hang` never
    answers; `trickle` sends headers then one byte every `trickle` seconds; `endless` answers 200
    with a huge declared length and writes until the client goes."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: bool = False
    trickle: float | None = None
    endless: bool = False


OK = Answer()


class Sink:
    def __init__(self, script: Callable[[Received], Answer] | Answer = OK) -> None:
        self.script = script
        self.received: list[Received] = []
        self.endless_written = 0
        self.changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]

    async def wait_for(self, predicate: Callable[[Sink], bool], within: float = 20.0) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: predicate(self))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        # Handlers end by themselves (a cancelled one makes Python 3.11's asyncio log an error).
        self._closing.set()
        for writer in list(self._writers):
            writer.transport.abort()  # a keep-alive connection idle in readuntil ends too
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(headers, body)
                answer = self.script(received) if callable(self.script) else self.script
                async with self.changed:
                    self.received.append(received)
                    self.changed.notify_all()
                if answer.hang:
                    await self._closing.wait()
                    return
                await self._answer(writer, answer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)
            self._writers.discard(writer)
            async with self.changed:
                self.changed.notify_all()

    async def _answer(self, writer: asyncio.StreamWriter, answer: Answer) -> None:
        reason = {200: "OK", 204: "No Content", 302: "Found", 500: "Internal Server Error"}.get(
            answer.status, "X"
        )
        extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
        if answer.endless:
            writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {1 << 40}\r\n{extra}\r\n".encode())
            chunk = b"x" * 65536
            while not self._closing.is_set():
                writer.write(chunk)
                await writer.drain()
                self.endless_written += len(chunk)
            return
        if answer.trickle is not None:
            writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n{extra}\r\n".encode())
            while True:
                writer.write(b"x")
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), answer.trickle)  # the pace of a slow body
                if self._closing.is_set():
                    return
        head = f"HTTP/1.1 {answer.status} {reason}\r\ncontent-length: {len(answer.body)}\r\n{extra}\r\n"
        writer.write(head.encode() + answer.body)
        await writer.drain()


async def until(condition: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    """Poll `condition` (a store another task or process writes: nothing there to await)."""
    async with asyncio.timeout(within):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def sink(script: Callable[[Received], Answer] | Answer = OK) -> AsyncIterator[Sink]:
    s = Sink(script)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()
