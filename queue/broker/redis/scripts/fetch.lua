--! keys: paused pending seq meta msg errors active
-- Fetch: ARGV max, leaseUntilNs, leaseScoreMs, nowNs, workerID. Leases up
-- to max pending tasks. Reply: (id, msg, meta, errors) per task. A fixed
-- number of commands per call, whatever max is.
if redis.call('EXISTS', K_PAUSED) == 1 then return {} end
local ids = redis.call('LPOP', K_PENDING, ARGV[1])
if not ids then return {} end
local n = #ids
-- Fencing tokens never go below the clock in microseconds: a replica
-- promoted after a failover may have missed the last increments of seq,
-- and must not hand out a token a stale worker still holds. Tokens stay
-- below 2^53 (exact in Lua) until the year 2255.
local floor = math.floor(tonumber(ARGV[4]) / 1000)
if tonumber(redis.call('GET', K_SEQ) or '0') < floor then
  redis.call('SET', K_SEQ, string.format('%d', floor))
end
local base = redis.call('INCRBY', K_SEQ, n) - n
local tail = ',' .. ARGV[2] .. ',' .. ARGV[4] .. ',0,' .. ARGV[5]
local score = ARGV[3]
local metas = hmget(K_META, ids)
local msgs = hmget(K_MSG, ids)
local out, z, sets, failed = {}, {}, {}, {}
for i = 1, n do
  local id, v, msg = ids[i], metas[i], msgs[i]
  if msg then
    -- Keep "attempts,maxRetries,retention", set state and the lease. A
    -- task without meta is fresh: the two numbers head its message.
    local a, rest
    if v then
      a, rest = string.match(v, '^%a,(%d+),([^,]*,[^,]*),')
    else
      a, rest = '0', string.match(msg, '^([^,]*,[^,]*),')
    end
    local meta = 'a,' .. a .. ',' .. rest .. ',' .. string.format('%d', base + i) .. tail
    sets[#sets + 1] = id
    sets[#sets + 1] = meta
    z[#z + 1] = score
    z[#z + 1] = id
    out[#out + 1] = id
    out[#out + 1] = msg
    out[#out + 1] = meta
    if a ~= '0' then
      out[#out + 1] = redis.call('HGET', K_ERRORS, id)
    else
      out[#out + 1] = false
    end
  end
end
if #sets > 0 then
  chunked('HSET', K_META, sets)
  zadd(K_ACTIVE, z)
end
return out
