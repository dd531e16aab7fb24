--! standalone
-- AcquireSlot: KEYS[1] the slots ZSET holder ->
-- lease end (ms). ARGV holder, limit, nowMs, untilMs, keyTTLms. Reply 1 if
-- holder has a slot now.
local key, holder, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[3])
if redis.call('ZSCORE', key, holder) or redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, ARGV[4], holder)
  redis.call('PEXPIRE', key, ARGV[5])
  return 1
end
return 0
