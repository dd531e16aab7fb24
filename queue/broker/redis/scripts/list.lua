--! keys: pending scheduled retry active dead completed msg meta errors results
-- List: ARGV keyIndex (1-based, into KEYS), offset, limit. Lists the IDs of
-- one state oldest first with their records. Reply: (id, msg, meta, errors,
-- result, score) per task; score is the sorted-set score as a string, false
-- for pending tasks (a list).
local idx, off, lim = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local key = KEYS[idx]
local ids, scores = {}, {}
if idx == 1 then
  ids = redis.call('LRANGE', key, off, off + lim - 1)
else
  -- The sentinel sorts last (+inf), so leaving it out only shortens the
  -- final page.
  local flat = redis.call('ZRANGE', key, off, off + lim - 1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    ids[#ids + 1] = flat[i]
    scores[#ids] = flat[i + 1]
  end
end
local out = {}
for i, id in ipairs(ids) do
  if id ~= SENTINEL then
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', K_MSG, id)
    out[#out + 1] = redis.call('HGET', K_META, id)
    out[#out + 1] = redis.call('HGET', K_ERRORS, id)
    out[#out + 1] = redis.call('HGET', K_RESULTS, id)
    out[#out + 1] = scores[i] or false
  end
end
return out
