--! keys: scheduled retry meta pending notify
-- Forward: ARGV nowMs, limit. Moves due scheduled and retry tasks to
-- pending. Reply: {moved, more} where more is 1 if a limit was reached.
local nowMs, limit = ARGV[1], tonumber(ARGV[2])
local moved, more = 0, 0
for _, key in ipairs({K_SCHEDULED, K_RETRY}) do
  local ids = redis.call('ZRANGEBYSCORE', key, '-inf', nowMs, 'LIMIT', 0, limit)
  if #ids > 0 then
    if #ids == limit then more = 1 end
    chunked('ZREM', key, ids)
    for _, id in ipairs(ids) do
      local m = parse(redis.call('HGET', K_META, id))
      if m then
        m.s = 'p'
        redis.call('HSET', K_META, id, fmt(m))
      end
    end
    chunked('RPUSH', K_PENDING, ids)
    moved = moved + #ids
  end
end
if moved > 0 then notify(moved) end
return {moved, more}
