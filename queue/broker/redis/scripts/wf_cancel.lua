--! keys: meta msg pending notify scheduled retry dead errors cancels tasklocks locks wfsteps wfdone wf wfids wfoutbox +workflow
-- CancelWorkflow: ARGV wfid, nowNs, nowMs. Reply: {0} cancelled, {-1}
-- not found, {-2, state} already finished.
WF.nowNs, WF.nowMs = ARGV[2], tonumber(ARGV[3])
local W = wfKey(ARGV[1])
if not W then return {-1} end
local st = redis.call('HGET', K_WF, W .. 'st')
if not st then return {-1} end
if st ~= 'R' then return {-2, st} end
wfFinish(W, ARGV[1], 'X', 'workflow cancelled')
wfFlush()
-- {0, 1}: cancel orders for steps in other slots were written (xslot.go).
if WF.cross then return {0, 1} end
return {0}
