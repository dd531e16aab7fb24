--! keys: meta msg scheduled retry dead pending notify
-- Retry: ARGV id. Moves a dead, retry or scheduled task to pending now.
-- Reply: 0 moved, -1 not found, -2 other state.
local id = ARGV[1]
local m = parse(redis.call('HGET', K_META, id))
if not m then
  -- No meta: a fresh pending task, or nothing.
  if redis.call('HEXISTS', K_MSG, id) == 0 then return -1 end
  return -2
end
local key = ({s = K_SCHEDULED, r = K_RETRY, d = K_DEAD})[m.s]
if not key then return -2 end
redis.call('ZREM', key, id)
m.s = 'p'
redis.call('HSET', K_META, id, fmt(m))
redis.call('RPUSH', K_PENDING, id)
notify(1)
return 0
