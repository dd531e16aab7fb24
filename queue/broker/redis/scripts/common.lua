-- Shared by the per-queue scripts (see scripts.go). Before it, scripts.go
-- defines K_<NAME> for each key of the queue (keys.go): KEYS[i] for the
-- keys the script lists in its "--! keys:" line, nil for the others. Times
-- arrive as strings from Go.

-- Wake-up tokens kept for WaitReady: enough to wake a few idle workers.
local NOTIFY_CAP = 16

local function parse(v)
  if not v then return nil end
  local s, a, mr, ret, tk, lu, sa, ca, w = string.match(v,
    '^(%a),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),(.*)$')
  if not s then return nil end
  return {s = s, a = tonumber(a), mr = tonumber(mr), ret = ret, tk = tk, lu = lu, sa = sa, ca = ca, w = w}
end

local function fmt(m)
  return m.s .. ',' .. string.format('%d', m.a) .. ',' .. string.format('%d', m.mr) .. ',' .. m.ret .. ',' ..
    m.tk .. ',' .. m.lu .. ',' .. m.sa .. ',' .. m.ca .. ',' .. m.w
end

local function notify(n)
  n = math.min(n, NOTIFY_CAP - redis.call('LLEN', K_NOTIFY))
  if n <= 0 then return end
  local t = {}
  for i = 1, n do t[i] = '1' end
  redis.call('LPUSH', K_NOTIFY, unpack(t))
end

-- pushEnded publishes the IDs of tasks that just finished (completed or
-- dead) on the shard's awaiting channel, when a process awaits tasks of
-- the shard (await.go: its waiters then read them at once instead of at
-- their next poll). One EXISTS otherwise.
local function pushEnded(ids)
  if K_AWAITING and redis.call('EXISTS', K_AWAITING) == 1 then
    redis.call('PUBLISH', K_AWAITING, table.concat(ids, ' '))
  end
end

-- appendError adds one error record (JSON object starting with '{"t":',
-- from Go) to the task's history, numbered with the attempt.
local function appendError(id, attempt, rec)
  local e = '{"a":' .. string.format('%d', attempt) .. ',' .. string.sub(rec, 2)
  local cur = redis.call('HGET', K_ERRORS, id)
  if cur then
    cur = string.sub(cur, 1, -2) .. ',' .. e .. ']'
  else
    cur = '[' .. e .. ']'
  end
  redis.call('HSET', K_ERRORS, id, cur)
end

local function forget(id)
  redis.call('HDEL', K_MSG, id)
  redis.call('HDEL', K_META, id)
  redis.call('HDEL', K_ERRORS, id)
  redis.call('HDEL', K_RESULTS, id)
  if K_WFSTEPS then redis.call('HDEL', K_WFSTEPS, id) end
end

-- chunked calls a command with many trailing arguments in slices, below
-- Lua's unpack limit.
local function chunked(cmd, key, args)
  local n = #args
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    redis.call(cmd, key, unpack(args, i, j))
    i = j + 1
  end
end

-- hmget reads many fields in slices; absent fields are false.
local function hmget(key, fields)
  local n = #fields
  if n <= 4000 then
    if n == 0 then return {} end
    return redis.call('HMGET', key, unpack(fields))
  end
  local out = {}
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    local part = redis.call('HMGET', key, unpack(fields, i, j))
    for k = 1, #part do out[i + k - 1] = part[k] end
    i = j + 1
  end
  return out
end

-- Every sorted set holds SENTINEL at score +inf. Its name is longer than
-- zset-max-listpack-value (64 by default), so Redis keeps the set as a
-- skiplist: adding a lease to a listpack-encoded set of ~100 members scans
-- them all, a skiplist insert is O(log n). Range queries stop below +inf
-- and never see it; counts and listings leave it out.
-- (A literal: a function library's top level, where this runs once at
-- load, may not call the string library.)
local SENTINEL = '~conq~skiplist~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'

-- zadd adds (score, member) pairs, keeping the sentinel: it goes in the
-- first ZADD with them (a command less per call; re-adding it at the
-- same score changes nothing).
local function zadd(key, pairs)
  local n = #pairs
  if n == 0 then return end
  local j = math.min(3998, n)
  redis.call('ZADD', key, 'inf', SENTINEL, unpack(pairs, 1, j))
  while j < n do
    local k = math.min(j + 4000, n)
    redis.call('ZADD', key, unpack(pairs, j + 1, k))
    j = k
  end
end

-- unlock releases the unique locks of tasks that end (completed, dead,
-- deleted), each only if the lock is still that task's. Free when the
-- queue has no unique tasks.
local function unlock(ids)
  if #ids == 0 or redis.call('HLEN', K_TASKLOCKS) == 0 then return end
  local keys = hmget(K_TASKLOCKS, ids)
  local held = {}
  for i = 1, #ids do
    local k = keys[i]
    if k then
      local v = redis.call('HGET', K_LOCKS, k)
      if v and string.match(v, '^(.*),%d+$') == ids[i] then
        redis.call('HDEL', K_LOCKS, k)
      end
      held[#held + 1] = ids[i]
    end
  end
  if #held > 0 then chunked('HDEL', K_TASKLOCKS, held) end
end

-- msgMeta is the meta of a task in state s of which only the message is
-- known (its head: max retries, retention).
local function msgMeta(msg, s)
  local mr, ret = string.match(msg, '^([^,]*),([^,]*),')
  return {s = s, a = 0, mr = tonumber(mr), ret = ret, tk = '0', lu = '0', sa = '0', ca = '0', w = ''}
end

-- taskMeta is the task's meta, or for a fresh pending task (stored with
-- its message only) the meta that implies; nil if there is neither.
local function taskMeta(id)
  local m = parse(redis.call('HGET', K_META, id))
  if m then return m end
  local msg = redis.call('HGET', K_MSG, id)
  if msg then return msgMeta(msg, 'p') end
  return nil
end

-- waitingToDead ends a pending, scheduled or retrying task (meta m) dead
-- with the error record rec: out of its list or set (a pending one left
-- in the list when keepPending: the caller removes many at once), the
-- error appended, the lock released. False, and nothing done, for a task
-- in another state.
local function waitingToDead(id, m, rec, nowMs, keepPending)
  if m.s == 'p' then
    if not keepPending then redis.call('LREM', K_PENDING, 1, id) end
  elseif m.s == 's' or m.s == 'r' then
    local key = ({s = K_SCHEDULED, r = K_RETRY})[m.s]
    redis.call('ZREM', key, id)
  else
    return false
  end
  appendError(id, m.a, rec)
  m.s = 'd'
  redis.call('HSET', K_META, id, fmt(m))
  zadd(K_DEAD, {nowMs, id})
  unlock({id})
  return true
end

-- store writes one new task (the caller checked its ID is free): score ""
-- means pending now, else scheduled with meta.
local function store(id, msg, meta, score)
  redis.call('HSET', K_MSG, id, msg)
  if score == '' then
    redis.call('RPUSH', K_PENDING, id)
    notify(1)
  else
    redis.call('HSET', K_META, id, meta)
    zadd(K_SCHEDULED, {score, id})
  end
end

-- stat adds n to counter c ('p' processed, 'f' failed) of the second of
-- nowMs in the queue's stats hash of the minute (Go names it), kept
-- 70 minutes (broker.StatsWindow). One HINCRBY per call, not per task.
local function stat(c, n, nowMs)
  if n <= 0 then return end
  -- The key's lifetime is renewed when a second's field is new (the
  -- key's first write among them), not on every call.
  if redis.call('HINCRBY', K_STATS, c .. string.format('%d', math.floor(tonumber(nowMs) / 1000)), n) == n then
    redis.call('EXPIRE', K_STATS, 4200)
  end
end

-- uncancel drops the cancel flags of tasks whose attempt ends. Free when
-- nothing is flagged.
local function uncancel(ids)
  if #ids == 0 or redis.call('HLEN', K_CANCELS) == 0 then return end
  chunked('HDEL', K_CANCELS, ids)
end

-- flagged reports whether a task is flagged for cancellation.
local function flagged(id)
  return redis.call('HLEN', K_CANCELS) > 0 and redis.call('HEXISTS', K_CANCELS, id) == 1
end
