-- AcquireSlot: KEYS[1] the slots ZSET (holder -> lease end, ms). ARGV
-- nowMs, limit, holder, untilMs, keepMs. Frees expired slots, then takes
-- (or renews) holder's. Reply: 1 got it, 0 all taken.
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
if not redis.call('ZSCORE', key, ARGV[3]) and redis.call('ZCARD', key) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', key, ARGV[4], ARGV[3])
redis.call('PEXPIRE', key, ARGV[5])
return 1
