--! keys: meta active cancels
-- ExtendLeases: ARGV leaseUntilNs, leaseScoreMs, then (id, token) pairs.
-- Reply: the 1-based pair numbers whose lease is lost, and negated, those
-- renewed whose task is flagged for cancellation.
local lu, score = ARGV[1], ARGV[2]
local n = (#ARGV - 2) / 2
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i + 1] end
local metas = hmget(K_META, ids)
local lost, sets, z = {}, {}, {}
local anyFlag = redis.call('HLEN', K_CANCELS) > 0
for i = 1, n do
  local id = ids[i]
  local m = parse(metas[i])
  if not m or m.s ~= 'a' or m.tk ~= ARGV[2 * i + 2] then
    lost[#lost + 1] = i
  else
    m.lu = lu
    sets[#sets + 1] = id
    sets[#sets + 1] = fmt(m)
    z[#z + 1] = score
    z[#z + 1] = id
    if anyFlag and redis.call('HEXISTS', K_CANCELS, id) == 1 then lost[#lost + 1] = -i end
  end
end
if #sets > 0 then
  chunked('HSET', K_META, sets)
  zadd(K_ACTIVE, z)
end
return lost
