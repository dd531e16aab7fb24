--! keys: meta active pending notify
-- Requeue: ARGV (id, token) pairs. Active tasks go back to the tail of
-- pending without counting an attempt. Reply: per item 0 done, 1 lease lost.
local out = {}
local woke = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local m = parse(redis.call('HGET', K_META, id))
  if not m or m.s ~= 'a' or m.tk ~= ARGV[i + 1] then
    out[#out + 1] = 1
  else
    redis.call('ZREM', K_ACTIVE, id)
    m.s, m.lu, m.w = 'p', '0', ''
    redis.call('HSET', K_META, id, fmt(m))
    redis.call('RPUSH', K_PENDING, id)
    woke = woke + 1
    out[#out + 1] = 0
  end
end
if woke > 0 then notify(woke) end
return out
