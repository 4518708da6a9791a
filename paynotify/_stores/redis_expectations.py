"""The Redis store's expectations: one Lua script per change, so each is atomic across processes.

x:<sha1>   hash: an expectation's fields (SQL_COLUMNS; '' for none)
xdue       sorted set of the open ones, scored by next_due while free, lease_until while leased
xall       sorted set of all of them by created_at, for listing newest first
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from paynotify._stores.expectations import (
    SQL_COLUMNS,
    Expectation,
    ExpectationState,
    ExpectationStore,
    from_row,
    sql_values,
)
from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from paynotify._stores.redis import RedisStore

__all__ = ["RedisExpectations"]

_NAMES = tuple(name.strip() for name in SQL_COLUMNS.split(","))
_LUA_NAMES = "{" + ", ".join(f"'{name}'" for name in _NAMES) + "}"
_PRELUDE = f"""
local p = ARGV[1]
local names = {_LUA_NAMES}
local function read(id) return redis.call('HMGET', p .. 'x:' .. id, unpack(names)) end
"""
_SCRIPTS = {
    # ARGV: prefix, id, created_at, next_due, then the fields in SQL_COLUMNS order.
    "expect": _PRELUDE
    + """
local key = p .. 'x:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then
  for i, name in ipairs(names) do redis.call('HSET', key, name, ARGV[4 + i]) end
  redis.call('ZADD', p .. 'xdue', ARGV[4], ARGV[2])
  redis.call('ZADD', p .. 'xall', ARGV[3], ARGV[2])
end
return read(ARGV[2])
""",
    # ARGV: prefix, now, limit, lease_until, token.
    "take": _PRELUDE
    + """
local ids = redis.call('ZRANGEBYSCORE', p .. 'xdue', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local taken = {}
for _, id in ipairs(ids) do
  local key = p .. 'x:' .. id
  if redis.call('HGET', key, 'state') == 'open' then
    redis.call('HSET', key, 'lease_token', ARGV[5], 'lease_until', ARGV[4], 'updated_at', ARGV[2])
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('ZADD', p .. 'xdue', ARGV[4], id)
    taken[#taken + 1] = read(id)
  else
    redis.call('ZREM', p .. 'xdue', id)
  end
end
return taken
""",
    # ARGV: prefix, id, state, outcome, now.
    "settle": _PRELUDE
    + """
local key = p .. 'x:' .. ARGV[2]
if redis.call('HGET', key, 'state') ~= 'open' then return 0 end
redis.call('HSET', key, 'state', ARGV[3], 'outcome', ARGV[4], 'lease_token', '', 'lease_until', '',
           'updated_at', ARGV[5])
redis.call('ZREM', p .. 'xdue', ARGV[2])
return 1
""",
    # ARGV: prefix, id, token, next_due, error, now, attempts ('' to keep).
    "reschedule": _PRELUDE
    + """
local key = p .. 'x:' .. ARGV[2]
if redis.call('HGET', key, 'state') ~= 'open' or redis.call('HGET', key, 'lease_token') ~= ARGV[3] then
  return 0
end
redis.call('HSET', key, 'next_due', ARGV[4], 'lease_token', '', 'lease_until', '', 'last_error', ARGV[5],
           'updated_at', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', key, 'attempts', ARGV[7]) end
redis.call('ZADD', p .. 'xdue', ARGV[4], ARGV[2])
return 1
""",
}


def _id(account: str, order_id: str, refund_id: str | None) -> str:
    # Hashed, so account names and ids never shape key names.
    text = f"{account}\x1f{order_id}\x1f{refund_id or ''}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _text(value: object) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


class RedisExpectations(ExpectationStore):
    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def _run(self, name: str, *args: str | int) -> Any:
        source = _SCRIPTS[name]

        async def run(client: aioredis.Redis) -> Any:
            return await client.eval(source, 0, self._store.prefix, *args)

        return await self._store._call(run)

    async def add(self, record: Expectation) -> Expectation:
        values = [_text(value) for value in sql_values(record)[:-1]]
        row = await self._run(
            "expect",
            _id(*record.key),
            repr(record.created_at),
            repr(record.next_due),
            *values,
        )
        return from_row(row)

    async def get(self, account: str, order_id: str, *, refund_id: str | None = None) -> Expectation | None:
        key = f"{self._store.prefix}x:{_id(account, order_id, refund_id)}"
        row = await self._store._call(lambda client: client.hmget(key, list(_NAMES)))
        return None if row[0] is None else from_row(row)

    async def settle(
        self,
        account: str,
        order_id: str,
        *,
        refund_id: str | None = None,
        outcome: str,
        state: ExpectationState = ExpectationState.SETTLED,
        now: float | None = None,
    ) -> bool:
        t = _now() if now is None else now
        return bool(
            await self._run("settle", _id(account, order_id, refund_id), state.value, outcome, repr(t))
        )

    async def take(self, *, limit: int, lease_seconds: float, now: float | None = None) -> list[Expectation]:
        t = _now() if now is None else now
        rows = await self._run("take", repr(t), limit, repr(t + lease_seconds), new_token())
        return [from_row(row) for row in rows]

    async def reschedule(
        self,
        expectation: Expectation,
        *,
        next_due: float,
        error: str | None = None,
        now: float | None = None,
        attempts: int | None = None,
    ) -> bool:
        t = _now() if now is None else now
        changed = await self._run(
            "reschedule", _id(*expectation.key), expectation.lease_token or "", repr(next_due), error or "",
            repr(t), "" if attempts is None else attempts,
        )  # fmt: skip
        return bool(changed)

    async def find(
        self,
        *,
        account: str | None = None,
        states: Iterable[ExpectationState] | None = None,
        limit: int = 100,
    ) -> list[Expectation]:
        wanted = None if states is None else frozenset(states)
        found: list[Expectation] = []
        page = max(limit, 100)
        prefix = self._store.prefix

        async def rows(client: aioredis.Redis, start: int) -> list[list[str | None]]:
            ids: list[str] = await client.zrevrange(f"{prefix}xall", start, start + page - 1)  # type: ignore[assignment]
            pipe = client.pipeline(transaction=False)
            for id_ in ids:
                pipe.hmget(f"{prefix}x:{id_}", list(_NAMES))
            return list(await pipe.execute()) if ids else []

        start = 0
        while len(found) < limit:
            batch = await self._store._call(lambda client, at=start: rows(client, at))  # type: ignore[misc]
            if not batch:
                break
            for row in batch:
                if row[0] is None:
                    continue
                record = from_row(row)
                if (account is None or record.account == account) and (
                    wanted is None or record.state in wanted
                ):
                    found.append(record)
            start += page
        return found[:limit]
