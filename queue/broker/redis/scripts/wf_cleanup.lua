--! keys: wfdone wfsteps
-- Workflow cleanup: ARGV nowMs, limit. Deletes finished workflows whose
-- retention has passed. Reply: {deleted, more, their IDs...} (Go drops
-- them from the global index).
local ids = redis.call('ZRANGEBYSCORE', K_WFDONE, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('UNLINK', wfKey(id)) end
if #ids > 0 then chunked('ZREM', K_WFDONE, ids) end
local out = {#ids, 0}
if #ids == tonumber(ARGV[2]) then out[2] = 1 end
for _, id in ipairs(ids) do out[#out + 1] = id end
return out
