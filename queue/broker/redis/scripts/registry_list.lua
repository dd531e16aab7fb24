--! standalone
-- Registry list (workers, schedulers): KEYS data (HASH id -> JSON), expiry
-- (ZSET id -> expiry ms); ARGV nowMs. Deletes the records that expired at
-- or before nowMs and returns the others' JSON, by ID. Atomic, so a record
-- renewed meanwhile is never deleted.
local K_DATA, K_EXPIRY = KEYS[1], KEYS[2]
local gone = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', ARGV[1])
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', K_EXPIRY, '-inf', ARGV[1])
  for i = 1, #gone, 1000 do
    redis.call('HDEL', K_DATA, unpack(gone, i, math.min(i + 999, #gone)))
  end
end
local ids = redis.call('ZRANGEBYSCORE', K_EXPIRY, '(' .. ARGV[1], '+inf')
if #ids == 0 then return {} end
table.sort(ids)
local out = {}
for i = 1, #ids, 1000 do
  local part = redis.call('HMGET', K_DATA, unpack(ids, i, math.min(i + 999, #ids)))
  for _, v in ipairs(part) do
    if v then out[#out + 1] = v end
  end
end
return out
