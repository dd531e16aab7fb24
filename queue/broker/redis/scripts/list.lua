--! keys: pending scheduled retry active dead completed msg meta errors results
-- List: ARGV keyIndex (1-based, into KEYS), offset, limit. Lists the IDs of
-- one state oldest first with their records. Reply: (id, msg, meta, errors,
-- result) per task.
local idx, off, lim = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local key = KEYS[idx]
local ids
if idx == 1 then
  ids = redis.call('LRANGE', key, off, off + lim - 1)
else
  -- The sentinel sorts last (+inf), so leaving it out only shortens the
  -- final page.
  ids = redis.call('ZRANGE', key, off, off + lim - 1)
end
local out = {}
for _, id in ipairs(ids) do
  if id ~= SENTINEL then
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', K_MSG, id)
    out[#out + 1] = redis.call('HGET', K_META, id)
    out[#out + 1] = redis.call('HGET', K_ERRORS, id)
    out[#out + 1] = redis.call('HGET', K_RESULTS, id)
  end
end
return out
