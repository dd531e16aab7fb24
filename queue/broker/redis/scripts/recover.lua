--! keys: active meta errors dead pending notify tasklocks locks
-- Recover: ARGV nowMs, limit, errorRecord. Tasks whose lease ended at or
-- before nowMs count an attempt (error kind lease_expired) and go to
-- pending, or dead when out of retries. Reply: {recovered, more}.
local nowMs, limit, rec = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', nowMs, 'LIMIT', 0, limit)
local woke = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', K_ACTIVE, id)
  local m = parse(redis.call('HGET', K_META, id))
  if m and m.s == 'a' then
    m.a = m.a + 1
    appendError(id, m.a, rec)
    m.lu, m.w = '0', ''
    if m.a > m.mr then
      m.s = 'd'
      zadd(K_DEAD, {nowMs, id})
      unlock({id})
    else
      m.s = 'p'
      redis.call('RPUSH', K_PENDING, id)
      woke = woke + 1
    end
    redis.call('HSET', K_META, id, fmt(m))
  end
end
if woke > 0 then notify(woke) end
local more = 0
if #ids == limit then more = 1 end
return {#ids, more}
