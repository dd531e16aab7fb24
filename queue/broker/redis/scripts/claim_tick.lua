--! keys: ticks msg meta pending notify scheduled
-- ClaimTick: ARGV entryKey, tickMs, nowMs, recordUntilMs, id, msg, meta,
-- score. Enqueues the task if tickMs is later than the entry's last
-- claimed tick (records older than nowMs are forgotten). Reply: 1 claimed,
-- 0 not (older tick, or the task ID exists).
local key, tick, nowMs = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HGET', K_TICKS, key)
if v then
  local last, exp = string.match(v, '^(%-?%d+),(%-?%d+)$')
  if tonumber(exp) > nowMs and tonumber(last) >= tick then return 0 end
end
redis.call('HSET', K_TICKS, key, ARGV[2] .. ',' .. ARGV[4])
local id = ARGV[5]
if redis.call('HEXISTS', K_MSG, id) == 1 then return 0 end
store(id, ARGV[6], ARGV[7], ARGV[8])
return 1
