--! keys: meta msg pending scheduled retry dead errors active cancels tasklocks locks notify wfsteps wfdone wf wfids wfoutbox wfevents awaiting +workflow
-- Cancel: ARGV id, nowMs, errorRecord, nowNs. A pending, scheduled or
-- retry task goes dead with errorRecord (Attempts unchanged), and if it is
-- a workflow step its step is cancelled; an active one is flagged in
-- cancels. Reply: the state letter the task was in, -1 not found, or -2
-- (with the letter) for dead and completed tasks.
local id, nowMs, rec = ARGV[1], ARGV[2], ARGV[3]
WF.nowNs, WF.nowMs = ARGV[4], tonumber(nowMs)
local m = taskMeta(id)
if not m then return {-1, ''} end
local was = m.s
if was == 'a' then
  redis.call('HSET', K_CANCELS, id, '1')
  return {0, was}
end
if not waitingToDead(id, m, rec, nowMs) then return {-2, was} end
pushEnded({id})
local link = wfLink(id)
if link then wfErrorEnd(link, rec, m.a) end
wfFlush()
-- A third item: an event for another slot was written (xslot.go).
if WF.cross then return {0, was, 1} end
return {0, was}
