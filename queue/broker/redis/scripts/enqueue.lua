--! keys: msg meta scheduled pending notify
-- Enqueue: ARGV[1] = P, then P (id, msg) pairs of tasks pending now, then
-- (id, msg, meta, scoreMs) per scheduled task. Reply: per task, in that
-- order, 0 stored or 1 ID conflict. Pending tasks get no meta entry (see
-- encoding.go). The caller removes duplicates within a call.
local p = tonumber(ARGV[1])
local ns = (#ARGV - 1 - 2 * p) / 4
local ids = {}
for i = 1, p do ids[i] = ARGV[2 * i] end
for i = 1, ns do ids[p + i] = ARGV[2 * p + 4 * i - 2] end
local exists = hmget(K_MSG, ids)
local out, msgs, pend, metas, sched = {}, {}, {}, {}, {}
for i = 1, p do
  if exists[i] then
    out[i] = 1
  else
    local id = ids[i]
    msgs[#msgs + 1] = id
    msgs[#msgs + 1] = ARGV[2 * i + 1]
    pend[#pend + 1] = id
    out[i] = 0
  end
end
for i = 1, ns do
  if exists[p + i] then
    out[p + i] = 1
  else
    local b = 2 * p + 4 * i - 2
    local id = ARGV[b]
    msgs[#msgs + 1] = id
    msgs[#msgs + 1] = ARGV[b + 1]
    metas[#metas + 1] = id
    metas[#metas + 1] = ARGV[b + 2]
    sched[#sched + 1] = ARGV[b + 3]
    sched[#sched + 1] = id
    out[p + i] = 0
  end
end
if #msgs > 0 then chunked('HSET', K_MSG, msgs) end
if #metas > 0 then
  chunked('HSET', K_META, metas)
  zadd(K_SCHEDULED, sched)
end
if #pend > 0 then
  chunked('RPUSH', K_PENDING, pend)
  notify(#pend)
end
return out
