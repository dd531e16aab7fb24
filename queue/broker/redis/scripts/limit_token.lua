-- TakeToken: KEYS[1] the bucket HASH (tokens, at in µs). ARGV nowUs, rate
-- per second, burst. Refills, then takes one token. Reply: 0 taken, else
-- µs until a token is available (none taken).
local key = KEYS[1]
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', key, 'tokens', 'at')
local tokens, at = tonumber(v[1]), tonumber(v[2])
if not tokens or not at then tokens, at = burst, now end
if now > at then
  tokens = tokens + (now - at) / 1000000 * rate
  at = now
end
if tokens > burst then tokens = burst end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate * 1000000)
  if wait < 1 then wait = 1 end
end
redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'at', string.format('%d', at))
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 60000)
return wait
