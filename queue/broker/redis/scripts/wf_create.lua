--! keys: msg pending notify wfsteps wf wfids +workflow
-- CreateWorkflow: ARGV wfid, F, then F (field, value) pairs of the
-- workflow (names without the handle prefix), S, then S (id, step, msg)
-- runs of the steps to enqueue now, then the IDs of the other steps.
-- Every step's task ID must be free in the shard. Reply: {0} created, {1}
-- workflow ID taken, {2, id} a step task ID taken.
local wfid = ARGV[1]
if redis.call('HEXISTS', K_WFIDS, wfid) == 1 then return {1} end
local f = tonumber(ARGV[2])
local base = 3 + 2 * f
local s = tonumber(ARGV[base])
local ids = {}
for k = 1, s do ids[k] = ARGV[base + 3 * k - 2] end
for k = base + 3 * s + 1, #ARGV do ids[#ids + 1] = ARGV[k] end
local taken = hmget(K_MSG, ids)
for k = 1, #ids do
  if taken[k] then return {2, ids[k]} end
end
local h = redis.call('HINCRBY', K_WFIDS, '', 1)
redis.call('HSET', K_WFIDS, wfid, h)
local W = h .. '|'
local fv = {}
for k = 3, 2 + 2 * f, 2 do
  fv[#fv + 1] = W .. ARGV[k]
  fv[#fv + 1] = ARGV[k + 1]
end
chunked('HSET', K_WF, fv)
if s > 0 then
  local msgs, links, pend = {}, {}, {}
  for k = 1, s do
    local b = base + 3 * k - 2
    msgs[#msgs + 1] = ARGV[b]
    msgs[#msgs + 1] = ARGV[b + 2]
    links[#links + 1] = ARGV[b]
    links[#links + 1] = ARGV[b + 1] .. ',' .. h .. ',' .. wfid
    pend[#pend + 1] = ARGV[b]
  end
  chunked('HSET', K_MSG, msgs)
  chunked('HSET', K_WFSTEPS, links)
  chunked('RPUSH', K_PENDING, pend)
  notify(#pend)
end
return {0}
