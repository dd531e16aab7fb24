-- ExtendSlots: KEYS[1] the slots ZSET. ARGV nowMs, untilMs, keepMs, then
-- holders. Renews the slots that have not expired. Reply: how many.
local key, now = KEYS[1], tonumber(ARGV[1])
local n = 0
for i = 4, #ARGV do
  local s = redis.call('ZSCORE', key, ARGV[i])
  if s and tonumber(s) > now then
    redis.call('ZADD', key, ARGV[2], ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('PEXPIRE', key, ARGV[3]) end
return n
