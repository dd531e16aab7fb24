--! keys: meta errors active dead retry pending notify tasklocks locks cancels msg scheduled wfsteps wfdone wf wfids wfoutbox wfevents awaiting +stats +workflow
-- Fail: ARGV nowMs, cancelRecord, nowNs, then (id, token, errorRecord,
-- retryAtMs, dead) runs. retryAtMs <= nowMs means pending at once. A task
-- flagged for cancellation goes dead, with cancelRecord unless the
-- worker's error is already of kind cancelled. A workflow step that goes
-- dead moves its workflow on. Reply: per item 0 done, 1 lease lost.
local nowMs = tonumber(ARGV[1])
WF.nowNs, WF.nowMs = ARGV[3], nowMs
local out = {}
local woke, failed = 0, 0
local ended = {} -- went dead
for i = 4, #ARGV, 5 do
  local id = ARGV[i]
  local m = parse(redis.call('HGET', K_META, id))
  if not m or m.s ~= 'a' or m.tk ~= ARGV[i + 1] then
    out[#out + 1] = 1
  else
    m.a = m.a + 1
    failed = failed + 1
    local rec, dead = ARGV[i + 2], ARGV[i + 4] == '1'
    if flagged(id) then
      redis.call('HDEL', K_CANCELS, id)
      dead = true
      if not string.find(rec, '"k":"cancelled"', 1, true) then rec = ARGV[2] end
    end
    appendError(id, m.a, rec)
    redis.call('ZREM', K_ACTIVE, id)
    local at = tonumber(ARGV[i + 3])
    if dead then
      m.s = 'd'
      zadd(K_DEAD, {nowMs, id})
      unlock({id})
    elseif at > nowMs then
      m.s = 'r'
      zadd(K_RETRY, {at, id})
    else
      m.s = 'p'
      redis.call('RPUSH', K_PENDING, id)
      woke = woke + 1
    end
    m.lu, m.w = '0', ''
    redis.call('HSET', K_META, id, fmt(m))
    if dead then
      ended[#ended + 1] = id
      local link = wfLink(id)
      if link then wfErrorEnd(link, rec, m.a) end
    end
    out[#out + 1] = 0
  end
end
wfFlush()
if #ended > 0 then pushEnded(ended) end
if woke > 0 then notify(woke) end
stat('f', failed, nowMs)
return wfMarkCross(out)
