"""What every publisher shares: a stable subscriber name, a lazy connection that is dropped and made
again after any failure, and a deadline on every publish."""

from __future__ import annotations

import abc
import asyncio
import importlib.util
import logging
from typing import Generic, TypeVar

from paynotify import ConfigurationError, PaymentResult, PaynotifyError
from paynotify.publishers._message import Message, encode_message

__all__ = ["DEFAULT_TIMEOUT", "PublishError", "Publisher", "require"]

log = logging.getLogger("paynotify.publishers")

# Shorter than any provider's own timeout for our reply (Alipay and WeChat wait about 5 s), so an
# inline delivery still answers "retry" in time when the broker does not.
DEFAULT_TIMEOUT = 3.0

C = TypeVar("C")


class PublishError(PaynotifyError):
    """The broker did not confirm a message: unreachable, refused it, or no answer in time."""


def require(module: str, extra: str) -> None:
    """ConfigurationError naming the extra to install when a broker's client is missing."""
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(f"{module} is not installed: pip install 'paynotify[{extra}]'")


class Publisher(abc.ABC, Generic[C]):
    """A subscriber that hands each PaymentResult to a broker: `await publisher(result)` returns once
    the broker confirmed the message and raises `PublishError` otherwise.

    Its subscriber name (what the store records success under) is `publisher.name`, derived from the
    target, not the server address: it stays the same across restarts and when the broker moves.
    """

    def __init__(self, *, target: str, timeout: float) -> None:
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        self.timeout = timeout
        # default_name(fn) reads these: "paynotify.publishers.NatsPublisher(payments.{provider}...)".
        self.__module__ = "paynotify.publishers"
        self.__qualname__ = f"{type(self).__name__}({target})"
        self._connection: C | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the connection belongs to
        self._connecting = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"{self.__module__}.{self.__qualname__}"

    def __repr__(self) -> str:
        # Never the URL: it may carry credentials.
        return f"<{self.name}>"

    # -- what a broker module supplies ---------------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> C:
        """A ready connection (raise if the broker cannot be reached or the target does not exist)."""

    @abc.abstractmethod
    async def _send(self, connection: C, message: Message, result: PaymentResult) -> None:
        """Publish and wait for the broker's confirmation; raise if there is none."""

    @abc.abstractmethod
    async def _close(self, connection: C) -> None: ...

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect now (else the first publish does); PublishError if the broker cannot be reached."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._connected()
        except TimeoutError as exc:
            raise PublishError(f"{self.name}: could not connect within {self.timeout:g} s") from exc
        except Exception as exc:
            raise PublishError(f"{self.name}: could not connect: {_describe(exc)}") from exc

    async def aclose(self) -> None:
        """Close the connection; a later publish connects again (on any event loop)."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise RuntimeError(f"{self.name} is connected on another event loop: aclose() it there")
        connection, self._connection = self._connection, None
        if connection is not None:
            self._close_later(connection)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._loop = None

    async def __call__(self, result: PaymentResult) -> None:
        message = encode_message(result)
        connection: C | None = None
        try:
            async with asyncio.timeout(self.timeout):
                connection = await self._connected()
                await self._send(connection, message, result)
        except Exception as exc:
            # Whatever failed, the next publish starts from a fresh connection: a half-broken one
            # (a lost socket, a channel the broker closed) would fail every publish after it.
            self._drop(connection)
            if isinstance(exc, TimeoutError):
                raise PublishError(
                    f"{self.name}: no confirmation for event {result.event_id} within {self.timeout:g} s"
                ) from exc
            raise PublishError(
                f"{self.name}: could not publish event {result.event_id}: {_describe(exc)}"
            ) from exc
        except BaseException:
            # Cancelled mid-publish: the connection may hold a half-sent frame.
            self._drop(connection)
            raise

    async def _connected(self) -> C:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A connection's sockets belong to the loop that made it; using them from another
            # fails in confusing ways (or hangs), so say what is wrong instead.
            if self._connection is not None or self._closing:
                raise RuntimeError(f"{self.name} is connected on another event loop: aclose() it there")
            self._loop, self._connecting = loop, asyncio.Lock()
        connection = self._connection
        if connection is not None:
            return connection
        async with self._connecting:  # one connect for all the publishes waiting on it
            if self._connection is None:
                self._connection = await self._connect()
                log.info("%s connected", self.name)
            return self._connection

    def _drop(self, connection: C | None) -> None:
        # Only the connection that failed: another publish may already have made a new one.
        if connection is None or connection is not self._connection:
            return
        self._connection = None
        self._close_later(connection)

    def _close_later(self, connection: C) -> None:
        # Closing a dead connection can wait on the network: never inside a publish's deadline.
        task = asyncio.get_running_loop().create_task(self._close_quietly(connection))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_quietly(self, connection: C) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self._close(connection)
        except Exception as exc:
            log.debug("%s: closing a connection failed: %s", self.name, _describe(exc))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
