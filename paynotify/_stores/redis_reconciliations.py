"""The Redis store's reconciliation reports and leases; each change one Lua script (atomic).

rr              hash: "<day>\\0<account>" -> the report's fields (COLUMNS) as a JSON list
rs              hash: the same fields, the report's JSON left out (what listings read)
rdays           sorted set (all scores 0, by member): "<inverted day>\\0<account>", so ascending
                order is newest day first, then account; `since` is one lexical bound
rdays:<sha1>    the same, for one account
rlatest         hash: account -> its latest reconciled day
rlease:<sha1>   hash: the lease of an (account, day): token, until (expiring a minute after it)

An inverted day has each digit d written 9 - d ("2026-03-14" -> "7973-96-85").
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import TYPE_CHECKING, Any

from paynotify._stores.reconciliations import (
    ReconciliationStore,
    StoredReport,
    check_key,
    check_report,
    day_text,
    from_row,
)
from paynotify._stores.tokens import new_token
from paynotify._stores.tokens import now as _now

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from paynotify._stores.redis import RedisStore

__all__ = ["RedisReconciliations"]

_SCRIPTS = {
    # ARGV: prefix, field, member, account hash, account, day, value, summary.
    "save": """
local p = ARGV[1]
redis.call('HSET', p .. 'rr', ARGV[2], ARGV[7])
redis.call('HSET', p .. 'rs', ARGV[2], ARGV[8])
redis.call('ZADD', p .. 'rdays', 0, ARGV[3])
redis.call('ZADD', p .. 'rdays:' .. ARGV[4], 0, ARGV[3])
local latest = redis.call('HGET', p .. 'rlatest', ARGV[5])
if not latest or latest < ARGV[6] then redis.call('HSET', p .. 'rlatest', ARGV[5], ARGV[6]) end
return 1
""",
    # ARGV: prefix, lease hash, token, until, now, milliseconds to keep the key.
    "take": """
local key = ARGV[1] .. 'rlease:' .. ARGV[2]
local held = redis.call('HGET', key, 'until')
if held and tonumber(held) > tonumber(ARGV[5]) then return 0 end
redis.call('HSET', key, 'token', ARGV[3], 'until', ARGV[4])
redis.call('PEXPIRE', key, ARGV[6])
return 1
""",
    # ARGV: prefix, lease hash, token.
    "release": """
local key = ARGV[1] .. 'rlease:' .. ARGV[2]
if redis.call('HGET', key, 'token') ~= ARGV[3] then return 0 end
redis.call('DEL', key)
return 1
""",
}
_INVERT = str.maketrans("0123456789", "9876543210")


def _hash(*parts: str) -> str:
    # Hashed, so account names never shape key names.
    return hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()


def _member(account: str, day: str) -> str:
    return f"{day.translate(_INVERT)}\x00{account}"


def _field(account: str, day: str) -> str:
    return f"{day}\x00{account}"


class RedisReconciliations(ReconciliationStore):
    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def _run(self, name: str, *args: str | int) -> Any:
        source = _SCRIPTS[name]

        async def run(client: aioredis.Redis) -> Any:
            return await client.eval(source, 0, self._store.prefix, *args)

        return await self._store._call(run)

    async def save_report(self, report: StoredReport) -> None:
        check_report(report)
        day = day_text(report.day)
        value = json.dumps(list(report.columns()), ensure_ascii=False)
        summary = json.dumps(list(report.summary().columns()), ensure_ascii=False)
        await self._run("save", _field(report.account, day), _member(report.account, day),
                        _hash(report.account), report.account, day, value, summary)  # fmt: skip

    async def _read(self, fields: list[str], *, whole: bool = False) -> list[StoredReport]:
        if not fields:
            return []
        key = self._store.prefix + ("rr" if whole else "rs")
        values = await self._store._call(lambda client: client.hmget(key, fields))
        return [from_row(json.loads(value)) for value in values if value is not None]

    async def report(self, account: str, day: date | str) -> StoredReport | None:
        found = await self._read([_field(account, day_text(day))], whole=True)
        return found[0] if found else None

    async def reports(
        self, *, account: str | None = None, since: date | str | None = None, limit: int = 100
    ) -> list[StoredReport]:
        prefix = self._store.prefix
        key = prefix + ("rdays" if account is None else "rdays:" + _hash(account))
        upper = "+" if since is None else "(" + day_text(since).translate(_INVERT) + "\x01"

        async def members(client: aioredis.Redis) -> list[str]:
            found: list[str] = await client.zrangebylex(key, "-", upper, start=0, num=limit)  # type: ignore[assignment]
            return found

        fields = []
        for member in await self._store._call(members):
            inverted, _, name = member.partition("\x00")
            fields.append(_field(name, inverted.translate(_INVERT)))
        return await self._read(fields)

    async def latest_reports(self) -> list[StoredReport]:
        key = self._store.prefix + "rlatest"

        async def read(client: aioredis.Redis) -> dict[str, str]:
            found: dict[str, str] = await client.hgetall(key)  # type: ignore[assignment]
            return found

        latest = await self._store._call(read)
        return await self._read([_field(name, latest[name]) for name in sorted(latest)])

    async def take_lease(
        self, account: str, day: date | str, *, seconds: float, now: float | None = None
    ) -> str | None:
        check_key(account)
        t = _now() if now is None else now
        token = new_token()
        keep = int((seconds + 60) * 1000)
        taken = await self._run(
            "take", _hash(account, day_text(day)), token, repr(t + seconds), repr(t), keep
        )
        return token if taken else None

    async def release_lease(self, account: str, day: date | str, token: str) -> bool:
        return bool(await self._run("release", _hash(account, day_text(day)), token))
