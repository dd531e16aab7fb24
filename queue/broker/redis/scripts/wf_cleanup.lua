--! keys: wfdone wf wfids wfcreated +workflow
-- Workflow cleanup: ARGV nowMs, limit. Deletes finished workflows whose
-- retention has passed (and their wfcreated entries), field by field (about 10 per step: a big
-- workflow makes a longer call, bounded by MaxWorkflowSteps). Reply:
-- {deleted, more, their IDs...} (Go drops them from the global index).
local ids = redis.call('ZRANGEBYSCORE', K_WFDONE, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local W = wfKey(id)
  if W then
    local n = tonumber(redis.call('HGET', K_WF, W .. 'n')) or 0
    local names = {}
    for _, f in ipairs(WF_HEAD_FIELDS) do names[#names + 1] = W .. f end
    for i = 0, n - 1 do
      for _, f in ipairs(WF_STEP_FIELDS) do names[#names + 1] = W .. f .. i end
    end
    chunked('HDEL', K_WF, names)
    redis.call('HDEL', K_WFIDS, id)
  end
end
if #ids > 0 then
  chunked('ZREM', K_WFDONE, ids)
  chunked('ZREM', K_WFCREATED, ids)
end
local out = {#ids, 0}
if #ids == tonumber(ARGV[2]) then out[2] = 1 end
for _, id in ipairs(ids) do out[#out + 1] = id end
return out
