--! keys: active meta errors dead pending notify tasklocks locks cancels msg scheduled retry wfsteps wfdone wf wfids wfoutbox wfevents awaiting +stats +workflow
-- Recover: ARGV nowMs, limit, errorRecord, cancelRecord (for tasks
-- flagged for cancellation, which go dead), nowNs. Tasks whose lease ended
-- at or before nowMs count an attempt (error kind lease_expired) and go
-- to pending, or dead when out of retries; a workflow step that goes dead
-- moves its workflow on. Reply: {recovered, more}.
local nowMs, limit, rec = ARGV[1], tonumber(ARGV[2]), ARGV[3]
WF.nowNs, WF.nowMs = ARGV[5], tonumber(nowMs)
local ids = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', nowMs, 'LIMIT', 0, limit)
local woke, n, ended = 0, 0, {}
for _, id in ipairs(ids) do
  redis.call('ZREM', K_ACTIVE, id)
  local m = parse(redis.call('HGET', K_META, id))
  if m and m.s == 'a' then
    m.a = m.a + 1
    n = n + 1
    local cancel = flagged(id)
    local r = rec
    if cancel then
      redis.call('HDEL', K_CANCELS, id)
      r = ARGV[4]
    end
    appendError(id, m.a, r)
    m.lu, m.w = '0', ''
    local dead = m.a > m.mr or cancel
    if dead then
      m.s = 'd'
      zadd(K_DEAD, {nowMs, id})
      unlock({id})
      ended[#ended + 1] = id
    else
      m.s = 'p'
      redis.call('RPUSH', K_PENDING, id)
      woke = woke + 1
    end
    redis.call('HSET', K_META, id, fmt(m))
    if dead then
      local link = wfLink(id)
      if link then wfErrorEnd(link, r, m.a) end
    end
  end
end
wfFlush()
if #ended > 0 then pushEnded(ended) end
if woke > 0 then notify(woke) end
stat('f', n, nowMs)
local more = 0
if #ids == limit then more = 1 end
return {#ids, more}
