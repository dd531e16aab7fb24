--! keys: meta errors active dead retry pending notify tasklocks locks
-- Fail: ARGV nowMs, then (id, token, errorRecord, retryAtMs, dead) runs.
-- retryAtMs <= nowMs means pending at once. Reply: per item 0 done, 1
-- lease lost.
local nowMs = tonumber(ARGV[1])
local out = {}
local woke = 0
for i = 2, #ARGV, 5 do
  local id = ARGV[i]
  local m = parse(redis.call('HGET', K_META, id))
  if not m or m.s ~= 'a' or m.tk ~= ARGV[i + 1] then
    out[#out + 1] = 1
  else
    m.a = m.a + 1
    appendError(id, m.a, ARGV[i + 2])
    redis.call('ZREM', K_ACTIVE, id)
    local at = tonumber(ARGV[i + 3])
    if ARGV[i + 4] == '1' then
      m.s = 'd'
      zadd(K_DEAD, {nowMs, id})
      unlock({id})
    elseif at > nowMs then
      m.s = 'r'
      zadd(K_RETRY, {at, id})
    else
      m.s = 'p'
      redis.call('RPUSH', K_PENDING, id)
      woke = woke + 1
    end
    m.lu, m.w = '0', ''
    redis.call('HSET', K_META, id, fmt(m))
    out[#out + 1] = 0
  end
end
if woke > 0 then notify(woke) end
return out
