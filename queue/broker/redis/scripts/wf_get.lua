--! keys: meta msg wfsteps
-- GetWorkflow: ARGV wfid. Reply: {} if absent, else {fields, tasks}:
-- the workflow hash (HGETALL) and, per enqueued step, (step, meta or
-- false, 1 if its task's message exists).
local W = wfKey(ARGV[1])
local all = redis.call('HGETALL', W)
if #all == 0 then return {} end
local tasks = {}
for k = 1, #all, 2 do
  local f = all[k]
  if string.sub(f, 1, 1) == 's' and string.sub(all[k + 1], 1, 1) == 'e' and string.match(f, '^s%d+$') then
    local i = string.sub(f, 2)
    local id = wfFields(redis.call('HGET', W, 'c' .. i))[1]
    tasks[#tasks + 1] = i
    tasks[#tasks + 1] = redis.call('HGET', K_META, id)
    tasks[#tasks + 1] = redis.call('HEXISTS', K_MSG, id)
  end
end
return {all, tasks}
