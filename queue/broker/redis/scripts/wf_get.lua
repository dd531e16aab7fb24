--! keys: meta msg errors wf wfids wfoutbox +workflow
-- GetWorkflow: ARGV wfid. Reply: {} if absent, else {fields, tasks}: the
-- workflow's fields as (name, value) pairs and, per enqueued step, (step,
-- meta or false, 1 if its task's message exists, its error history when
-- it waits to retry or false). For a foreign step (its task in another
-- slot, read by Go) the meta is false, the third item 2 if its move is
-- still in the outbox, else 3, and the fourth false.
local W = wfKey(ARGV[1])
if not W then return {} end
local n = tonumber(redis.call('HGET', K_WF, W .. 'n'))
if not n then return {} end
local names = {}
for k, f in ipairs(WF_HEAD_FIELDS) do names[k] = f end
local head = #names
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
  local c = vals[head + #WF_STEP_FIELDS * i + 1]
  if wfStepState(vals[head + #WF_STEP_FIELDS * i + 2], c) == 'e' then
    local f = wfFields(c)
    local id = f[1]
    tasks[#tasks + 1] = tostring(i)
    if f[10] then
      local o = redis.call('HGET', K_WFOUTBOX, id)
      tasks[#tasks + 1] = false
      if o and string.sub(o, 1, 1) == 'm' then tasks[#tasks + 1] = 2 else tasks[#tasks + 1] = 3 end
      tasks[#tasks + 1] = false
    else
      local m = redis.call('HGET', K_META, id)
      tasks[#tasks + 1] = m
      tasks[#tasks + 1] = redis.call('HEXISTS', K_MSG, id)
      if m and string.sub(m, 1, 1) == 'r' then
        tasks[#tasks + 1] = redis.call('HGET', K_ERRORS, id)
      else
        tasks[#tasks + 1] = false
      end
    end
  end
end
return {all, tasks}
