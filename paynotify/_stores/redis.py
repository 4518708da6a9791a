"""A store in Redis, shared by any number of app instances: `redis://host:6379/0?prefix=paynotify:`.

URL options paynotify reads (the rest go to redis-py): `prefix=` (default `paynotify:`),
`pool_max=N` connections (default 50; a burst beyond them waits for a free one rather than failing)
and `timeout=SECONDS`, the deadline of every operation, the wait for a connection included
(default 3, under WeChat's 5 s answer limit; past it the operation fails with `StoreError` and the
provider gets the failure reply).

Every state change is one Lua script, so it is atomic across processes. Data model (all keys start
with the prefix):

    e:<event_id>        hash: the event's fields, its lease (token, lease_until) and `done`, the JSON
                        list of subscribers that succeeded
    due                 sorted set: events a dispatcher may take, scored by when (next_attempt_at
                        while pending, lease_until while in flight: an expired lease is due by itself)
    created             sorted set by created_at, for listing newest first
    s:<state>           one sorted set per state, scored by updated_at, for purge and state filters
    a:<event_id>, audit the attempt history and the audit log (redis_history.py)
    o:<sha1>            set of the event ids of one (account, order id)
    schema              the data model's version

Durability is Redis's configuration, not this module's: an acknowledged notification survives a
Redis crash only with `appendonly yes` and `appendfsync always` (or a replica confirmed with WAIT).
With snapshots or `appendfsync everysec`, a crash can lose the last second (or snapshot) of records,
events already acknowledged to the provider. Use PostgreSQL where that cannot be arranged.
Redis Cluster is not supported (the scripts touch keys they compute).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from paynotify._errors import ConfigurationError, StoreError
from paynotify._result import PaymentResult, UnhandledEvent
from paynotify._stores.base import (
    RECORDABLE,
    RETAINED,
    Claim,
    ClaimState,
    EventQuery,
    EventState,
    Lease,
    Store,
    StoredEvent,
)
from paynotify._stores.expectations import ExpectationStore
from paynotify._stores.filters import in_window
from paynotify._stores.history import Attempt, EventHistory, bounded
from paynotify._stores.reconciliations import ReconciliationStore
from paynotify._stores.redis_scripts import SCRIPTS
from paynotify._stores.redis_search import BACKFILL, CANDIDATES, MARKER, members, members_of, ranges
from paynotify._stores.rows import event_fields, stored_event
from paynotify._stores.search import Search
from paynotify._stores.tokens import new_token, now
from paynotify._stores.transitions import (
    DEAD_LETTER,
    RELEASE,
    RESCHEDULE,
)

__all__ = ["RedisStore"]

SCHEMA_VERSION = 1
PURGE_BATCH = 500
STATE_SCAN_LIMIT = 10_000
"""`find` by state reads the per-state sets when they hold at most this many events (e.g. the dead
letters among millions of completed events), instead of walking every event newest first."""

T = TypeVar("T")

_OWN_OPTIONS = ("prefix", "pool_max", "timeout")
DEFAULT_POOL_MAX = 50
DEFAULT_TIMEOUT = 3.0


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """The connection URL without paynotify's own options, and those options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own: dict[str, str] = {}
    for key, value in query:
        if key in _OWN_OPTIONS:
            if key in own or not value:
                raise ConfigurationError(f"Redis store URL: give {key}=... once, not empty")
            own[key] = value
    rest = urlencode([(k, v) for k, v in query if k not in _OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), own


def _positive(own: Mapping[str, str], key: str, default: float) -> float:
    raw = own.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigurationError(f"Redis store URL: {key}={raw!r} must be a positive number")
    return value


def _row(attempt: Attempt | None) -> str:
    """An attempt as the settling scripts take it ('' for none), its error bounded."""
    if attempt is None:
        return ""
    return attempt._replace(error=bounded(attempt.error)).to_json()


def _order_key(account: str, order_id: str) -> str:
    # Hashed, so account names and order ids never shape key names.
    return hashlib.sha1(f"{account}\x1f{order_id}".encode(), usedforsecurity=False).hexdigest()


class RedisStore(Store):
    def __init__(self, url: str) -> None:
        self._url, own = _split_url(url)
        self.prefix = own.get("prefix", "paynotify:")
        self.pool_max = int(_positive(own, "pool_max", DEFAULT_POOL_MAX))
        self.timeout = _positive(own, "timeout", DEFAULT_TIMEOUT)
        parts = urlsplit(self._url)
        self._where = f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._checked = False

    async def _call(self, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                if self._client is None:
                    # A blocking pool: past pool_max, a caller waits for a connection (within the
                    # deadline) instead of redis-py's default of failing at once.
                    pool = aioredis.BlockingConnectionPool.from_url(
                        self._url,
                        decode_responses=True,
                        max_connections=self.pool_max,
                        timeout=self.timeout,
                        socket_timeout=self.timeout,
                        socket_connect_timeout=self.timeout,
                    )
                    self._client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
                    for name, source in SCRIPTS.items():
                        self._scripts[name] = self._client.register_script(source)
                    self._scripts["backfill"] = self._client.register_script(BACKFILL)
                if not self._checked:
                    await self._check_schema(self._client)
                return await fn(self._client)
        except TimeoutError as exc:
            raise StoreError(f"Redis store {self._where}: did not answer within {self.timeout:g} s") from exc
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis store {self._where}: {type(exc).__name__}: {exc}") from exc

    async def _check_schema(self, client: aioredis.Redis) -> None:
        key = self.prefix + "schema"
        await client.set(key, SCHEMA_VERSION, nx=True)
        found = await client.get(key)
        version = int(found) if found and found.isdigit() else -1
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"Redis store {self._where} (prefix {self.prefix!r}) has data model version {found!r}; "
                f"this paynotify understands {SCHEMA_VERSION}"
                + ("; upgrade paynotify" if version > SCHEMA_VERSION else "")
            )
        self._checked = True

    async def _backfill(self) -> None:
        """Put the events recorded before the search existed into its index, once per prefix, 500
        a call (each within the store's timeout). Idempotent: instances starting together may both
        run it, and one interrupted resumes by skipping what is indexed."""
        marker = self.prefix + MARKER
        if await self._call(lambda client: client.exists(marker)):
            return
        cursor = 0

        async def batch(client: aioredis.Redis) -> int:
            after, found = await client.zscan(self.prefix + "created", cursor, count=500)
            ids = [str(member) for member, _ in found]
            pipe = client.pipeline(transaction=False)
            for event_id in ids:
                pipe.hmget(self.prefix + "e:" + event_id, ["kind", "result_json", "skeys"])
            rows = await pipe.execute()
            pipe = client.pipeline(transaction=False)
            for event_id, (kind, result_json, skeys) in zip(ids, rows, strict=True):
                if result_json is not None and skeys is None:
                    indexed = members_of(event_id, kind, result_json)
                    await self._scripts["backfill"](args=[self.prefix, event_id, indexed], client=pipe)
            await pipe.execute()
            return int(after)

        while True:
            cursor = await self._call(batch)
            if cursor == 0:
                break
        await self._call(lambda client: client.set(marker, "1"))

    async def _script(self, name: str, *args: str | int) -> Any:
        return await self._call(lambda client: self._scripts[name](args=[self.prefix, *args]))

    async def open(self) -> None:
        """Connect, and index the events an earlier version recorded (once per prefix)."""
        await self._call(lambda client: client.ping())
        await self._backfill()

    @property
    def expectations(self) -> ExpectationStore:
        from paynotify._stores.redis_expectations import RedisExpectations

        return RedisExpectations(self)

    @property
    def history(self) -> EventHistory:
        from paynotify._stores.redis_history import RedisHistory

        return RedisHistory(self)

    @property
    def reconciliations(self) -> ReconciliationStore:
        from paynotify._stores.redis_reconciliations import RedisReconciliations

        return RedisReconciliations(self)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _event(self, event_id: str, fields: Mapping[str, str]) -> StoredEvent:
        try:
            return stored_event({**fields, "event_id": event_id, "done_subscribers": fields.get("done")})
        except StoreError as exc:
            raise StoreError(f"Redis store {self._where}: {exc}") from exc

    def _fields(self, result: PaymentResult | UnhandledEvent) -> list[str]:
        _, account, provider, kind, status, order_id, result_json = event_fields(result)
        return [account, provider, kind, status, order_id, result_json, _order_key(account, order_id),
                members(result)]  # fmt: skip

    # -- inline delivery -----------------------------------------------------------------------

    async def claim(self, result: PaymentResult, *, lease_seconds: float) -> Claim:
        t, token = now(), new_token()
        reply = await self._script(
            "claim", result.event_id, repr(t), repr(t + lease_seconds), token, *self._fields(result)
        )
        outcome = reply[0]
        if outcome == "new":
            return Claim(ClaimState.NEW, token, frozenset(json.loads(reply[1])), int(reply[2]))
        if outcome == "done":
            return Claim(ClaimState.DONE)
        if outcome == "in_flight":
            return Claim(ClaimState.IN_FLIGHT)
        raise StoreError(
            f"Redis store {self._where}: malformed record for {result.event_id}: state {reply[1]!r}"
        )

    async def subscriber_done(self, event_id: str, token: str, subscriber: str) -> None:
        await self._script("subscriber_done", event_id, subscriber, repr(now()))

    async def complete(
        self, event_id: str, token: str, *, done: Sequence[str] = (), attempt: Attempt | None = None
    ) -> None:
        await self._script("complete", event_id, repr(now()), json.dumps(list(done)), _row(attempt))

    async def release(
        self, event_id: str, token: str, *, error: str | None = None, attempt: Attempt | None = None
    ) -> None:
        await self._script(
            "settle", event_id, token, repr(now()), RELEASE.target.value, error or "", "", _row(attempt)
        )

    async def record(
        self, entry: PaymentResult | UnhandledEvent, state: EventState, *, reason: str | None
    ) -> bool:
        overwritable = ",".join(["", *sorted(RECORDABLE[state]), ""])
        fields = self._fields(entry)
        return bool(
            await self._script(
                "record", entry.event_id, repr(now()), state.value, reason or "", overwritable, *fields
            )
        )

    # -- queued delivery -----------------------------------------------------------------------

    async def enqueue(self, result: PaymentResult) -> bool:
        return bool(await self._script("enqueue", result.event_id, repr(now()), *self._fields(result)))

    async def acquire(self, *, limit: int, lease_seconds: float) -> list[Lease]:
        t, token = now(), new_token()
        ids: list[str] = await self._script("acquire", repr(t), limit, repr(t + lease_seconds), token)
        events = await self._fetch(ids)
        return [Lease(event, token) for event in events]

    async def reschedule(
        self, event_id: str, token: str, *, at: float, error: str, attempt: Attempt | None = None
    ) -> None:
        await self._script(
            "settle", event_id, token, repr(now()), RESCHEDULE.target.value, error, repr(at), _row(attempt)
        )

    async def dead_letter(
        self, event_id: str, token: str, *, error: str, attempt: Attempt | None = None
    ) -> None:
        await self._script(
            "settle", event_id, token, repr(now()), DEAD_LETTER.target.value, error, "", _row(attempt)
        )

    # -- operations ----------------------------------------------------------------------------

    async def _fetch(self, ids: list[str]) -> list[StoredEvent]:
        async def fetch(client: aioredis.Redis) -> list[dict[str, str]]:
            pipe = client.pipeline(transaction=False)
            for event_id in ids:
                pipe.hgetall(self.prefix + "e:" + event_id)
            return await pipe.execute()

        rows = await self._call(fetch) if ids else []
        return [self._event(event_id, row) for event_id, row in zip(ids, rows, strict=True) if row]

    async def get(self, event_id: str) -> StoredEvent | None:
        found = await self._fetch([event_id])
        return found[0] if found else None

    async def select(self, query: EventQuery) -> list[StoredEvent]:
        account, order_id, provider, kind = query.account, query.order_id, query.provider, query.kind
        states, limit = query.states, query.limit
        created_after, created_before, before_event_id = (
            query.created_after,
            query.created_before,
            query.before_event_id,
        )
        wanted = frozenset(states) if states is not None else None
        window = (created_after, created_before, before_event_id)

        search = Search.of(query.search) if query.search is not None else None

        def matches(e: StoredEvent) -> bool:
            return (
                (search is None or search.matches(e))
                and (account is None or e.account == account)
                and (order_id is None or e.order_id == order_id)
                and (provider is None or e.provider == provider)
                and (kind is None or e.kind == kind)
                and (wanted is None or e.state in wanted)
                and in_window(e.created_at, e.event_id, *window)
            )

        def newest(events: list[StoredEvent]) -> list[StoredEvent]:
            return sorted(events, key=lambda e: (e.created_at, e.event_id), reverse=True)[:limit]

        if search is not None:
            return newest([e for e in await self._fetch(await self._search_ids(search)) if matches(e)])
        if account is not None and order_id is not None:
            key = self.prefix + "o:" + _order_key(account, order_id)
            members = await self._call(lambda c: c.smembers(key))
            return newest([e for e in await self._fetch(sorted(map(str, members))) if matches(e)])
        if wanted is not None:
            in_states = await self._in_states(wanted, max(limit * 10, STATE_SCAN_LIMIT))
            if in_states is not None:
                return newest([e for e in await self._fetch(in_states) if matches(e)])
        # Newest first through the created index, within the window, in batches, until `limit`
        # events match. Equal scores come in descending member order: find's tie-break.
        found: list[StoredEvent] = []
        start, batch = 0, max(limit, 200)
        while len(found) < limit:
            ids = await self._newest(start, batch, created_after, created_before, before_event_id)
            if not ids:
                break
            found += [e for e in await self._fetch(ids) if matches(e)]
            start += batch
        return found[:limit]

    async def _search_ids(self, search: Search) -> list[str]:
        """The event ids in the search index's ranges (redis_search.py), each read in O(log n + k)."""

        async def read(client: aioredis.Redis) -> list[str]:
            pipe = client.pipeline(transaction=False)
            for low, high in ranges(search):
                pipe.zrangebylex(self.prefix + "x", low, high, start=0, num=CANDIDATES)
            found = {str(member).rpartition("\x1f")[2] for batch in await pipe.execute() for member in batch}
            return sorted(found)

        return await self._call(read)

    async def _in_states(self, states: frozenset[EventState], at_most: int) -> list[str] | None:
        """Every event id in `states`, from the per-state sets; None when there are more than
        `at_most` (then most events are in them, and the created index finds matches sooner)."""

        async def read(client: aioredis.Redis) -> list[str] | None:
            keys = [self.prefix + "s:" + state.value for state in sorted(states)]
            sizes = [int(await client.zcard(key)) for key in keys]
            if sum(sizes) > at_most:
                return None
            return [str(i) for key in keys for i in await client.zrange(key, 0, -1)]

        return await self._call(read)

    async def _newest(
        self,
        start: int,
        count: int,
        created_after: float | None,
        created_before: float | None,
        before_event_id: str | None,
    ) -> list[str]:
        # With a cursor its own time is included; the events of it not before the cursor are
        # dropped by find's window check.
        high = "+inf" if created_before is None else repr(created_before)
        if created_before is not None and before_event_id is None:
            high = "(" + high
        low = "-inf" if created_after is None else repr(created_after)

        async def page(client: aioredis.Redis) -> list[str]:
            ids = await client.zrevrangebyscore(self.prefix + "created", high, low, start=start, num=count)
            return [str(i) for i in ids]

        return await self._call(page)

    async def requeue(self, event_id: str, *, replay: bool = False) -> bool:
        return bool(await self._script("requeue", event_id, repr(now()), "1" if replay else "0"))

    async def delete(self, query: EventQuery, *, before: float) -> int:
        account, provider, order_id, created_after = (
            query.account,
            query.provider,
            query.order_id,
            query.created_after,
        )
        states = query.states if query.states is not None else frozenset(RETAINED)
        columns = {"account": account, "provider": provider, "order_id": order_id}
        equal = [item for column, value in columns.items() if value is not None for item in (column, value)]
        if created_after is not None or equal:
            after = "" if created_after is None else repr(created_after)
            return await self._purge_matching(before, states, after, equal)
        total = 0
        for state in states:
            while True:
                removed = int(await self._script("purge", state.value, repr(before), PURGE_BATCH))
                total += removed
                if removed < PURGE_BATCH:
                    break
        return total

    async def _purge_matching(
        self, before: float, states: Iterable[EventState], after: str, equal: list[str]
    ) -> int:
        total = 0
        for state in states:
            start, skip = "-inf", 0
            while True:
                deleted, read, start, skip = await self._script(
                    "purge_matching", state.value, repr(before), PURGE_BATCH, start, skip, after, *equal
                )
                total += int(deleted)
                if int(read) < PURGE_BATCH:
                    break
        return total

    async def oldest_due(self) -> float | None:
        async def oldest(client: aioredis.Redis) -> float | None:
            # Pending events are in their own per-state set; `due` holds when each is due.
            ids = [str(i) for i in await client.zrange(self.prefix + "s:pending", 0, 999)]
            if not ids:
                return None
            pipe = client.pipeline(transaction=False)
            for event_id in ids:
                pipe.zscore(self.prefix + "due", event_id)
            scores = [float(s) for s in await pipe.execute() if s is not None]
            return min(scores, default=None)

        return await self._call(oldest)

    async def count(self) -> dict[EventState, int]:
        async def count(client: aioredis.Redis) -> dict[EventState, int]:
            pipe = client.pipeline(transaction=False)
            for state in EventState:
                pipe.zcard(self.prefix + "s:" + state.value)
            sizes = await pipe.execute()
            return {state: int(n) for state, n in zip(EventState, sizes, strict=True) if n}

        return await self._call(count)
