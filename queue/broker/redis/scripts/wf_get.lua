--! keys: meta msg wf wfids +workflow
-- GetWorkflow: ARGV wfid. Reply: {} if absent, else {fields, tasks}: the
-- workflow's fields as (name, value) pairs and, per enqueued step, (step,
-- meta or false, 1 if its task's message exists).
local W = wfKey(ARGV[1])
if not W then return {} end
local n = tonumber(redis.call('HGET', K_WF, W .. 'n'))
if not n then return {} end
local names = {'st', 'q', 'n', 'open', 'out', 'ret', 'cr', 'err', 'res', 'fin'}
for i = 0, n - 1 do
  for _, f in ipairs(WF_STEP_FIELDS) do names[#names + 1] = f .. i end
end
local full = {}
for k = 1, #names do full[k] = W .. names[k] end
local vals = hmget(K_WF, full)
local all, tasks = {}, {}
for k = 1, #names do
  if vals[k] then
    all[#all + 1] = names[k]
    all[#all + 1] = vals[k]
  end
end
for i = 0, n - 1 do
  local c = vals[10 + #WF_STEP_FIELDS * i + 1]
  if wfStepState(vals[10 + #WF_STEP_FIELDS * i + 2], c) == 'e' then
    local id = wfFields(c)[1]
    tasks[#tasks + 1] = tostring(i)
    tasks[#tasks + 1] = redis.call('HGET', K_META, id)
    tasks[#tasks + 1] = redis.call('HEXISTS', K_MSG, id)
  end
end
return {all, tasks}
