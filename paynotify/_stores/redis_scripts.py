"""The Redis store's Lua scripts: one per state change, so each is atomic across processes.

Which rows each may take is rendered from the transition table (paynotify._stores.transitions).
"""

from __future__ import annotations

from paynotify._stores.history import ATTEMPTS_KEPT
from paynotify._stores.lua import lua_set, lua_sources
from paynotify._stores.transitions import (
    ACQUIRE,
    CLAIM,
    COMPLETE,
    DEAD_LETTER,
    RELEASE,
    REPLAY,
    RESCHEDULE,
    RETRY,
    EventState,
)

__all__ = ["SCRIPTS"]

# One script settles an event for release, reschedule and dead_letter: they must take the same rows.
assert {(t.sources, t.needs_token) for t in (RELEASE, RESCHEDULE, DEAD_LETTER)} == {(RELEASE.sources, True)}

# Shared by every script: move an event to a new state and keep the per-state sets in step; which
# rows each operation may take, rendered from the transition table (paynotify._stores.transitions).
_PRELUDE = f"""
local p = ARGV[1]
local function key(id) return p .. 'e:' .. id end
local valid = {lua_set(EventState)}
local claim_takes = {lua_sources(CLAIM)}
local acquire_takes = {lua_sources(ACQUIRE)}
local complete_takes = {lua_sources(COMPLETE)}
local settle_takes = {lua_sources(RELEASE)}
local retry_takes = {lua_sources(RETRY)}
local replay_takes = {lua_sources(REPLAY)}
local resets_attempts = {lua_set(RETRY.resets_attempts_from)}
local function set_state(id, old, new, t)
  if old then redis.call('ZREM', p .. 's:' .. old, id) end
  redis.call('ZADD', p .. 's:' .. new, t, id)
  redis.call('HSET', key(id), 'state', new, 'updated_at', t)
end
local function leased(k, st, t)
  return st == 'in_flight' and tonumber(redis.call('HGET', k, 'lease_until') or '0') > t
end
-- The search's members (redis_search.py), RS-separated (char 30), into the lex-ordered set `x`; kept in
-- the hash so a purge removes them.
local each_member = '[^' .. string.char(30) .. ']+'
local function index_search(id, members)
  if not members or members == '' then return end
  redis.call('HSET', key(id), 'skeys', members)
  for member in string.gmatch(members, each_member) do redis.call('ZADD', p .. 'x', 0, member) end
end
-- An attempt (its JSON; '' = none) into the event's history list, newest first, kept bounded.
local function add_attempt(id, attempt)
  if not attempt or attempt == '' then return end
  redis.call('LPUSH', p .. 'a:' .. id, attempt)
  redis.call('LTRIM', p .. 'a:' .. id, 0, {ATTEMPTS_KEPT - 1})
end
-- A new event from the seven fields at ARGV[at] on (account, provider, kind, status, order_id,
-- result_json, okey), in state `new`, in every index a new event belongs to.
local function insert(id, at, t, new, attempts)
  redis.call('HSET', key(id), 'account', ARGV[at], 'provider', ARGV[at + 1], 'kind', ARGV[at + 2],
    'status', ARGV[at + 3], 'order_id', ARGV[at + 4], 'result_json', ARGV[at + 5], 'okey', ARGV[at + 6],
    'attempts', attempts, 'created_at', t, 'done', '[]')
  set_state(id, nil, new, t)
  redis.call('ZADD', p .. 'created', t, id)
  redis.call('SADD', p .. 'o:' .. ARGV[at + 6], id)
  index_search(id, ARGV[at + 7])
end
"""

_CLAIM = (
    _PRELUDE
    + """
local id, t, lease, token = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local k = key(id)
local st = redis.call('HGET', k, 'state')
if not st then
  insert(id, 6, t, 'in_flight', 1)
  redis.call('HSET', k, 'token', token, 'lease_until', lease)
  redis.call('ZADD', p .. 'due', lease, id)
  return {'new', '[]', 1}
end
if not valid[st] then return {'malformed', st} end
if leased(k, st, t) then return {'in_flight'} end
if not claim_takes(st, true) then return {'done'} end
set_state(id, st, 'in_flight', t)
redis.call('HSET', k, 'token', token, 'lease_until', lease)
redis.call('HDEL', k, 'next_attempt_at')
redis.call('HINCRBY', k, 'attempts', 1)
redis.call('ZADD', p .. 'due', lease, id)
return {'new', redis.call('HGET', k, 'done'), tonumber(redis.call('HGET', k, 'attempts'))}
"""
)

_SUBSCRIBER_DONE = (
    _PRELUDE
    + """
local k = key(ARGV[2])
local done = redis.call('HGET', k, 'done')
if not done then return 0 end
local names = cjson.decode(done)
for _, name in ipairs(names) do if name == ARGV[3] then return 0 end end
table.insert(names, ARGV[3])
redis.call('HSET', k, 'done', cjson.encode(names), 'updated_at', ARGV[4])
return 1
"""
)

_COMPLETE = (
    _PRELUDE
    + """
local id, t = ARGV[2], tonumber(ARGV[3])
local k = key(id)
local st = redis.call('HGET', k, 'state')
if st then add_attempt(id, ARGV[5]) end
if not st or not complete_takes(st, false) then return 0 end
local names = cjson.decode(redis.call('HGET', k, 'done') or '[]')
local seen = {}
for _, name in ipairs(names) do seen[name] = true end
for _, name in ipairs(cjson.decode(ARGV[4])) do
  if not seen[name] then table.insert(names, name); seen[name] = true end
end
if #names > 0 then redis.call('HSET', k, 'done', cjson.encode(names)) end
set_state(id, st, 'done', t)
redis.call('HDEL', k, 'token', 'lease_until', 'next_attempt_at', 'last_error')
redis.call('ZREM', p .. 'due', id)
return 1
"""
)

# ARGV: prefix, id, token, now, new state, error, next_attempt_at ('' = none), attempt ('' = none)
_SETTLE = (
    _PRELUDE
    + """
local id, token, t, new, err, at = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local k = key(id)
local st = redis.call('HGET', k, 'state')
if st then add_attempt(id, ARGV[8]) end
if not settle_takes(st, false) or redis.call('HGET', k, 'token') ~= token then return 0 end
set_state(id, st, new, t)
redis.call('HDEL', k, 'token', 'lease_until')
if err ~= '' then redis.call('HSET', k, 'last_error', err) end
if at ~= '' then
  redis.call('HSET', k, 'next_attempt_at', at)
  redis.call('ZADD', p .. 'due', at, id)
else
  redis.call('HDEL', k, 'next_attempt_at')
  redis.call('ZREM', p .. 'due', id)
end
return 1
"""
)

_ENQUEUE = (
    _PRELUDE
    + """
local id, t = ARGV[2], tonumber(ARGV[3])
local k = key(id)
if redis.call('EXISTS', k) == 1 then return 0 end
insert(id, 4, t, 'pending', 0)
redis.call('HSET', k, 'next_attempt_at', t)
redis.call('ZADD', p .. 'due', t, id)
return 1
"""
)

# ARGV: prefix, id, now, state, reason ('' = none), the states an existing event may be
# overwritten in (",rejected," or ","), then the fields
_RECORD = (
    _PRELUDE
    + """
local id, t, new, reason = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local k = key(id)
local st = redis.call('HGET', k, 'state')
if st then
  if string.find(ARGV[6], ',' .. st .. ',', 1, true) then
    redis.call('HSET', k, 'last_error', reason, 'updated_at', t)
    return 1
  end
  return 0
end
insert(id, 7, t, new, 0)
if reason ~= '' then redis.call('HSET', k, 'last_error', reason) end
return 1
"""
)

_ACQUIRE = (
    _PRELUDE
    + """
local t, limit, lease, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local taken = {}
local ids = redis.call('ZRANGEBYSCORE', p .. 'due', '-inf', t, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local k = key(id)
  local st = redis.call('HGET', k, 'state')
  if acquire_takes(st, not leased(k, st, t)) then
    set_state(id, st, 'in_flight', t)
    redis.call('HSET', k, 'token', token, 'lease_until', lease)
    redis.call('HDEL', k, 'next_attempt_at')
    redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('ZADD', p .. 'due', lease, id)
    table.insert(taken, id)
  else
    redis.call('ZREM', p .. 'due', id)
  end
end
return taken
"""
)

_REQUEUE = (
    _PRELUDE
    + """
local id, t, replay = ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local k = key(id)
local st = redis.call('HGET', k, 'state')
if not st or leased(k, st, t) then return 0 end
local takes = replay and replay_takes or retry_takes
if not takes(st, true) then return 0 end
if replay then redis.call('HSET', k, 'done', '[]') end
if resets_attempts[st] then redis.call('HSET', k, 'attempts', 0) end
set_state(id, st, 'pending', t)
redis.call('HDEL', k, 'token', 'lease_until')
redis.call('HSET', k, 'next_attempt_at', t)
redis.call('ZADD', p .. 'due', t, id)
return 1
"""
)

# Shared by the purges: delete an event and its entries in every index.
_FORGET = """
local function forget(id, state)
  local okey = redis.call('HGET', key(id), 'okey')
  if okey then redis.call('SREM', p .. 'o:' .. okey, id) end
  local skeys = redis.call('HGET', key(id), 'skeys')
  if skeys then
    for member in string.gmatch(skeys, each_member) do redis.call('ZREM', p .. 'x', member) end
  end
  redis.call('ZREM', p .. 's:' .. state, id)
  redis.call('ZREM', p .. 'created', id)
  redis.call('ZREM', p .. 'due', id)
  redis.call('DEL', key(id), p .. 'a:' .. id)
end
"""

_PURGE = (
    _PRELUDE
    + _FORGET
    + """
local state, before, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', p .. 's:' .. state, '-inf', '(' .. before, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do forget(id, state) end
return #ids
"""
)

# With filters, the events of the state set that do not match stay, so the walk cannot restart at
# the low end each time: it resumes at a position, the score reached and how many events kept at
# that score come first there (equal scores are in member order). Each call reads at most `limit`.
# ARGV: prefix, state, before, limit, from (a score), skip, created_after ('' = any), then
# field, value pairs that must be equal. Returns deleted, read, and the position to resume at.
_PURGE_MATCHING = (
    _PRELUDE
    + _FORGET
    + """
local state, before, limit, from, skip = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local after = tonumber(ARGV[7])
local fields, wanted = {'created_at'}, {}
for i = 8, #ARGV, 2 do
  table.insert(fields, ARGV[i])
  wanted[#fields] = ARGV[i + 1]
end
local rows = redis.call('ZRANGEBYSCORE', p .. 's:' .. state, from, '(' .. before,
  'WITHSCORES', 'LIMIT', skip, limit)
local deleted, last, kept = 0, from, skip
for i = 1, #rows, 2 do
  local id, score = rows[i], rows[i + 1]
  if score ~= last then last, kept = score, 0 end
  local values = redis.call('HMGET', key(id), unpack(fields))
  local created = tonumber(values[1])
  local match = not after or (created ~= nil and created >= after)
  for j = 2, #fields do match = match and values[j] == wanted[j] end
  if match then
    forget(id, state)
    deleted = deleted + 1
  else
    kept = kept + 1
  end
end
return {deleted, #rows / 2, last, kept}
"""
)


SCRIPTS = {
    "claim": _CLAIM,
    "subscriber_done": _SUBSCRIBER_DONE,
    "complete": _COMPLETE,
    "settle": _SETTLE,
    "enqueue": _ENQUEUE,
    "record": _RECORD,
    "acquire": _ACQUIRE,
    "requeue": _REQUEUE,
    "purge": _PURGE,
    "purge_matching": _PURGE_MATCHING,
}
