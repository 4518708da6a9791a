"""Redis Streams: XADD and a de-duplication key in one Lua script, so a second publish of the same
event adds nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paynotify import ConfigurationError, PaymentResult
from paynotify.publishers._base import DEFAULT_TIMEOUT, Publisher, log, require
from paynotify.publishers._message import CONTENT_TYPE, Message

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["DEFAULT_DEDUP_TTL", "DEFAULT_STREAM", "RedisStreamPublisher"]

DEFAULT_STREAM = "payments"
# Longer than any provider resends a notification (about a day), with room for an operator's replay.
DEFAULT_DEDUP_TTL = 7 * 86400.0

# KEYS: stream, dedup key. ARGV: ttl ms, maxlen ('' for none), then field, value, ...
# A script runs atomically: no other client sees the entry without the key, or the key without it.
_PUBLISH = """
local seen = redis.call('GET', KEYS[2])
if seen then return {0, seen} end
local id
if ARGV[2] == '' then
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return {1, id}
"""


@dataclass(frozen=True, slots=True)
class _Connection:
    client: Redis
    publish: AsyncScript


class RedisStreamPublisher(Publisher[_Connection]):
    """Append each PaymentResult to a Redis stream, once per event.

        notifier.subscribe(RedisStreamPublisher("redis://cache.internal:6379/0", stream="payments"))

    The entry's fields are the message headers plus `body`. The key `{stream}:dedup:{event_id}`
    (`dedup_prefix` changes the part before the id) holds the entry id for `dedup_ttl` seconds; while
    it exists, a publish of the same event returns without adding. On Redis Cluster, give the stream
    a hash tag (`{payments}`) so both keys live in one slot. `maxlen` trims the stream approximately
    (entries no consumer read yet can be trimmed: leave it None unless consumers keep up).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream: str = DEFAULT_STREAM,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        dedup_prefix: str | None = None,
        maxlen: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        require("redis", "redis")
        if not dedup_ttl >= 1:
            raise ConfigurationError(f"dedup_ttl must be at least 1 second, not {dedup_ttl!r}")
        if maxlen is not None and maxlen < 1:
            raise ConfigurationError(f"maxlen must be positive, not {maxlen!r}")
        self.stream = stream
        self.dedup_ttl = dedup_ttl
        self.dedup_prefix = f"{stream}:dedup:" if dedup_prefix is None else dedup_prefix
        self.maxlen = maxlen
        self._url = url
        super().__init__(target=stream, timeout=timeout)

    async def _connect(self) -> _Connection:
        from redis.asyncio import Redis

        client = Redis.from_url(self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        # Run as EVALSHA, loaded again when the server lost it (after a restart).
        return _Connection(client, client.register_script(_PUBLISH))

    async def _send(self, connection: _Connection, message: Message, result: PaymentResult) -> None:
        args: list[Any] = [int(self.dedup_ttl * 1000), "" if self.maxlen is None else self.maxlen]
        for field, value in message.headers.items():
            args += (field, value)
        args += ("content_type", CONTENT_TYPE, "body", message.body)
        keys = [self.stream, self.dedup_prefix + message.event_id]
        added, entry = await connection.publish(keys=keys, args=args)
        if not added:
            log.info("%s: stream already has event %s (entry %s)", self.name, message.event_id, entry)

    async def _close(self, connection: _Connection) -> None:
        await connection.client.aclose()
