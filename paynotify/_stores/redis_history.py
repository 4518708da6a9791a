"""The Redis store's attempt history and audit log.

a:<event_id>  list: the event's attempts as JSON, newest first, trimmed to ATTEMPTS_KEPT (the
              settling scripts push a delivery attempt in the same script; the purges delete it)
audit         sorted set, all scores 0: `<id>|<json>` members, so lex order is time order
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from paynotify._stores.history import ATTEMPTS_KEPT, Attempt, AuditEntry, EventHistory, batches, bounded

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from paynotify._stores.redis import RedisStore

__all__ = ["RedisHistory"]

_ID_LENGTH = 24
"""Characters of an audit id (history.new_audit_id): 16 of time, 8 random."""

# ARGV: prefix, the audit member ('' = none), the row for each event, then the event ids. One
# script: the entry and its rows together, and rows only for events that exist (a purge deletes them).
_AUDIT = f"""
local p = ARGV[1]
if ARGV[2] ~= '' then redis.call('ZADD', p .. 'audit', 0, ARGV[2]) end
for i = 4, #ARGV do
  if redis.call('EXISTS', p .. 'e:' .. ARGV[i]) == 1 then
    redis.call('LPUSH', p .. 'a:' .. ARGV[i], ARGV[3])
    redis.call('LTRIM', p .. 'a:' .. ARGV[i], 0, {ATTEMPTS_KEPT - 1})
  end
end
return 1
"""


def _time_bound(at: float) -> str:
    """The smallest id of an entry made at `at` or later."""
    return f"{max(0, int(at * 1_000_000)):016x}"


class RedisHistory(EventHistory):
    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._audit_key = store.prefix + "audit"

    async def _eval(self, source: str, *args: str) -> Any:
        async def run(client: aioredis.Redis) -> Any:
            return await client.eval(source, 0, self._store.prefix, *args)

        return await self._store._call(run)

    async def add_attempt(self, event_id: str, attempt: Attempt) -> None:
        row = attempt._replace(error=bounded(attempt.error)).to_json()
        await self._eval(_AUDIT, "", row, event_id)

    async def attempts(self, event_id: str) -> list[Attempt]:
        key = f"{self._store.prefix}a:{event_id}"
        rows = await self._store._call(lambda client: client.lrange(key, 0, -1))  # the writes keep it bounded
        return [Attempt.from_json(str(row)) for row in rows]

    async def audit(self, entry: AuditEntry, *, events: Sequence[str] | None = None) -> None:
        ids = entry.event_ids if events is None else tuple(events)
        member, row = f"{entry.id}|{entry.to_json()}", entry.attempt().to_json()
        for n, batch in enumerate(batches(ids)):
            await self._eval(_AUDIT, member if n == 0 else "", row, *batch)

    async def audit_log(
        self, *, since: float | None = None, before_id: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        high = "+" if before_id is None else f"({before_id}"
        low = "-" if since is None else f"[{_time_bound(since)}"
        key = self._audit_key
        count = max(limit, 0)
        if count == 0:
            return []
        members = await self._store._call(lambda client: client.zrevrangebylex(key, high, low, 0, count))
        return [AuditEntry.from_json(str(member)[_ID_LENGTH + 1 :]) for member in members]

    async def forget_audit(self, *, before: float) -> int:
        bound, key = f"({_time_bound(before)}", self._audit_key
        return int(await self._store._call(lambda client: client.zremrangebylex(key, "-", bound)))
