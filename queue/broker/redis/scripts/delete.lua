--! keys: meta msg pending scheduled retry dead completed errors results tasklocks locks wfsteps notify active cancels wfdone wf wfids wfoutbox wfevents +workflow
-- Delete: ARGV id, nowNs, nowMs. Reply: 0 deleted (1: and xslot.go has
-- work), -1 not found, -2
-- active. Deleting a workflow step's unfinished task fails its step; a
-- completed one's step stays completed (wfKeepEnded).
local id = ARGV[1]
WF.nowNs, WF.nowMs = ARGV[2], tonumber(ARGV[3])
local m = parse(redis.call('HGET', K_META, id))
if not m then
  -- No meta: a fresh pending task, or nothing.
  if redis.call('HEXISTS', K_MSG, id) == 0 then return -1 end
  m = {s = 'p'}
end
if m.s == 'a' then return -2 end
if m.s == 'p' then
  redis.call('LREM', K_PENDING, 1, id)
else
  local key = ({s = K_SCHEDULED, r = K_RETRY, d = K_DEAD, c = K_COMPLETED})[m.s]
  redis.call('ZREM', key, id)
end
unlock({id})
local link = wfLink(id)
forget(id)
if link and m.s == 'c' then
  wfKeepEnded({link}, {m.a})
elseif link then
  wfTaskEnded(link, 'g', nil, nil, '', m.a)
end
wfFlush()
-- 1: deleted, and an order or event for another slot was written.
if WF.cross then return 1 end
return 0
