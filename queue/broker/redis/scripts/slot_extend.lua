--! standalone
-- ExtendSlots: KEYS[1] the slots ZSET. ARGV nowMs, untilMs,
-- keyTTLms, holders... Renews slots still held; expired ones stay gone.
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
for i = 4, #ARGV do
  redis.call('ZADD', key, 'XX', ARGV[2], ARGV[i])
end
if redis.call('EXISTS', key) == 1 then redis.call('PEXPIRE', key, ARGV[3]) end
return 0
