"""The Redis store's search index: one sorted set `x` whose members all score 0, so it is ordered
by bytes and ZRANGEBYLEX reads a prefix or an exact id in O(log n + k).

Members, written by the same Lua script that records the event (atomic with it) and removed by
the purges: `o<US>lower(order_id)<US>event_id`, `i<US>id<US>event_id` for the transaction and refund
ids, `e<US>event_id`.
"""

from __future__ import annotations

from paynotify._result import PaymentResult, UnhandledEvent
from paynotify._stores.search import ID_FIELDS, TOP, Search

__all__ = ["BACKFILL", "CANDIDATES", "MARKER", "members", "members_of", "ranges"]

US = "\x1f"
CANDIDATES = 5000
"""A search reads at most this many members per range; the events found are checked and sorted."""


def members(entry: PaymentResult | UnhandledEvent) -> str:
    """The entry's members, \\x1e-separated (one Lua argument)."""
    event_id = entry.event_id
    found = [f"e{US}{event_id}"]
    if isinstance(entry, PaymentResult):
        found.append(f"o{US}{entry.order_id.lower()}{US}{event_id}")
        for name in ID_FIELDS:
            value = getattr(entry, name)
            if value:
                found.append(f"i{US}{value}{US}{event_id}")
    return "\x1e".join(m for m in found if "\x1e" not in m)


MARKER = "search_indexed"
"""Set once every event recorded before the search existed is in `x` (see RedisStore._backfill)."""
BACKFILL = """
local k = ARGV[1] .. 'e:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 or redis.call('HEXISTS', k, 'skeys') == 1 then return 0 end
redis.call('HSET', k, 'skeys', ARGV[3])
for member in string.gmatch(ARGV[3], '[^' .. string.char(30) .. ']+') do
  redis.call('ZADD', ARGV[1] .. 'x', 0, member)
end
return 1
"""
"""Index one event recorded before the search (only if it still exists and is not indexed yet)."""


def members_of(event_id: str, kind: str, result_json: str) -> str:
    """`members`, from a stored hash's fields (the backfill of earlier events)."""
    if kind == "unhandled":
        return f"e{US}{event_id}"
    try:
        return members(PaymentResult.model_validate_json(result_json))
    except ValueError:
        return f"e{US}{event_id}"


def ranges(search: Search) -> list[tuple[str, str]]:
    """The ZRANGEBYLEX (min, max) ranges of a search."""
    found = [
        (f"[o{US}{search.order_prefix}", f"(o{US}{search.order_prefix}{TOP}"),
        (f"[i{US}{search.text}{US}", f"(i{US}{search.text}{US}{TOP}"),
    ]
    if search.event_prefix is not None:
        found.append((f"[e{US}{search.event_prefix[0]}", f"(e{US}{search.event_prefix[0]}{TOP}"))
    return found
