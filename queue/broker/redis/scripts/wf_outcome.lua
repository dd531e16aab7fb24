--! keys: wf wfids +workflow
-- Workflow outcome (no steps): ARGV wfid, and "1" to reply with the state
-- alone while the workflow runs (AwaitWorkflowOutcome's polls). Reply:
-- false if absent, else {st, ret, cr, err, res, fin} (absent fields
-- false), or {st} while running with ARGV[2] "1". One HMGET either way.
local W = wfKey(ARGV[1])
if not W then return false end
local v = redis.call('HMGET', K_WF, W .. 'st', W .. 'ret', W .. 'cr', W .. 'err', W .. 'res', W .. 'fin')
if not v[1] then return false end
if v[1] == 'R' and ARGV[2] == '1' then return {v[1]} end
return v
