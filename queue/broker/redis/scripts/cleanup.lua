--! keys: completed msg meta errors results wfsteps
-- Cleanup: ARGV nowMs, limit. Deletes completed tasks whose retention has
-- passed. Reply: {deleted, more}.
local ids = redis.call('ZRANGEBYSCORE', K_COMPLETED, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  chunked('ZREM', K_COMPLETED, ids)
  chunked('HDEL', K_MSG, ids)
  chunked('HDEL', K_META, ids)
  chunked('HDEL', K_ERRORS, ids)
  chunked('HDEL', K_RESULTS, ids)
  if redis.call('HLEN', K_WFSTEPS) > 0 then chunked('HDEL', K_WFSTEPS, ids) end
end
local more = 0
if #ids == tonumber(ARGV[2]) then more = 1 end
return {#ids, more}
