--! keys: wf wfids +workflow
-- Workflow state: ARGV wfid. Reply: its state letter, or false if absent.
local W = wfKey(ARGV[1])
if not W then return false end
return redis.call('HGET', K_WF, W .. 'st')
