--! keys: msg meta pending notify wfsteps wfevents wfmoved scheduled retry dead errors cancels tasklocks locks wf wfids wfdone wfoutbox +workflow
-- Mover, in the target shard of foreign steps (xslot.go): ARGV nowMs,
-- nowNs, then (task ID, order) pairs as workflow.lua writes them in a home
-- shard's wfoutbox. An order may arrive more than once (a mover that died
-- before dropping it, two movers at once): wfmoved remembers every link
-- moved here for MOVED_KEEP, and a repeated order of a moved link does
-- nothing, even once its task is completed and deleted. Reply: {1} if an
-- event for a home shard was written (the forwarder has work), else {0}.
-- (wf, wfids, wfdone and wfoutbox are listed for the shared helpers; only
-- foreign links reach them here, which touch none.)
--   m: enqueue the task (pending). A task ID taken by another task fails
--      the step, as wfStart does in its own shard.
--   x: the task of this link here: cancel it as CancelTask does
--      (pending, scheduled, retry: dead now, its end an event; active:
--      flagged). Not here and never moved, with a message: store it dead
--      (its step is already cancelled at home), so that a move order
--      still in flight finds it moved.
local nowMs = tonumber(ARGV[1])
WF.nowNs, WF.nowMs = ARGV[2], nowMs
local MOVED_KEEP = 86400000
redis.call('ZREMRANGEBYSCORE', K_WFMOVED, '-inf', '(' .. nowMs)
local pend = {}
for i = 3, #ARGV, 2 do
  local id, order = ARGV[i], ARGV[i + 1]
  local kind = string.sub(order, 1, 1)
  local o = wfSplit(order, 2) -- target tag, message, link[, error record]
  local msg, link = o[2], o[3]
  local moved = redis.call('ZSCORE', K_WFMOVED, link)
  if kind == 'm' and not moved then
    if redis.call('HEXISTS', K_MSG, id) == 1 then
      local queue = string.match(o[1], '^[^{]*')
      wfTaskEnded(link, 'f', nil, nil, 'enqueue: task "' .. id .. '" in queue "' .. queue .. '": task ID already exists', nil)
    else
      redis.call('HSET', K_MSG, id, msg)
      redis.call('HSET', K_WFSTEPS, id, link)
      pend[#pend + 1] = id
    end
    zadd(K_WFMOVED, {nowMs + MOVED_KEEP, link})
  elseif kind == 'x' then
    local rec = o[4]
    if redis.call('HGET', K_WFSTEPS, id) == link then
      local m = taskMeta(id)
      if m and m.s == 'a' then
        redis.call('HSET', K_CANCELS, id, '1')
      elseif m and waitingToDead(id, m, rec, nowMs) then
        wfErrorEnd(link, rec, m.a)
      end
    elseif not moved and msg ~= '' and redis.call('HEXISTS', K_MSG, id) == 0 then
      local m = msgMeta(msg, 'd')
      redis.call('HSET', K_MSG, id, msg)
      redis.call('HSET', K_WFSTEPS, id, link)
      redis.call('HSET', K_META, id, fmt(m))
      appendError(id, 0, rec)
      zadd(K_DEAD, {nowMs, id})
      zadd(K_WFMOVED, {nowMs + MOVED_KEEP, link})
    end
  end
end
if #pend > 0 then
  chunked('RPUSH', K_PENDING, pend)
  notify(#pend)
end
if WF.cross then return {1} end
return {0}
