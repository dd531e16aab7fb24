--! keys: meta active pending notify errors dead tasklocks locks cancels msg scheduled retry wfsteps wfdone wf wfids wfoutbox wfevents awaiting +workflow
-- Requeue: ARGV nowMs, cancelRecord, nowNs, then (id, token) pairs.
-- Active tasks go back to the tail of pending without counting an
-- attempt; those flagged for cancellation go dead with cancelRecord (a
-- workflow step's step is then cancelled). Reply: per item 0 done, 1
-- lease lost.
WF.nowNs, WF.nowMs = ARGV[3], tonumber(ARGV[1])
local out, ended = {}, {}
local woke = 0
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local m = parse(redis.call('HGET', K_META, id))
  if not m or m.s ~= 'a' or m.tk ~= ARGV[i + 1] then
    out[#out + 1] = 1
  else
    redis.call('ZREM', K_ACTIVE, id)
    m.lu, m.w = '0', ''
    if flagged(id) then
      redis.call('HDEL', K_CANCELS, id)
      appendError(id, m.a, ARGV[2])
      m.s = 'd'
      redis.call('HSET', K_META, id, fmt(m))
      zadd(K_DEAD, {ARGV[1], id})
      unlock({id})
      ended[#ended + 1] = id
      local link = wfLink(id)
      if link then wfErrorEnd(link, ARGV[2], m.a) end
    else
      m.s = 'p'
      redis.call('HSET', K_META, id, fmt(m))
      redis.call('RPUSH', K_PENDING, id)
      woke = woke + 1
    end
    out[#out + 1] = 0
  end
end
wfFlush()
if #ended > 0 then pushEnded(ended) end
if woke > 0 then notify(woke) end
return wfMarkCross(out)
