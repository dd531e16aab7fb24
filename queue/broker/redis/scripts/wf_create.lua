--! keys: msg pending notify wfsteps wf wfids +workflow
-- CreateWorkflow, for several workflows of the shard at once (workflow.go
-- batches concurrent calls): ARGV K, then K blocks of: wfid, F, F (field,
-- value) pairs of the workflow (names without the handle prefix), S, S
-- (id, step, msg) runs of the steps to enqueue now, O, the IDs of the O
-- other steps. Every step's task ID must be free in the shard. Reply: per
-- block (code, id): 0 created, 1 workflow ID taken, 2 the step task ID id
-- taken. Blocks run in order, each as if alone.
local out = {}
local pos = 2
local woke = 0
for _ = 1, tonumber(ARGV[1]) do
  local wfid = ARGV[pos]
  local f = tonumber(ARGV[pos + 1])
  local fstart = pos + 2
  local sbase = fstart + 2 * f
  local s = tonumber(ARGV[sbase])
  local obase = sbase + 3 * s + 1
  local o = tonumber(ARGV[obase])
  pos = obase + o + 1
  if redis.call('HEXISTS', K_WFIDS, wfid) == 1 then
    out[#out + 1] = 1
    out[#out + 1] = ''
  else
    local ids = {}
    for k = 1, s do ids[k] = ARGV[sbase + 3 * k - 2] end
    for k = 1, o do ids[#ids + 1] = ARGV[obase + k] end
    local taken = hmget(K_MSG, ids)
    local conflict
    for k = 1, #ids do
      if taken[k] then
        conflict = ids[k]
        break
      end
    end
    if conflict then
      out[#out + 1] = 2
      out[#out + 1] = conflict
    else
      local h = redis.call('HINCRBY', K_WFIDS, '', 1)
      redis.call('HSET', K_WFIDS, wfid, h)
      local W = h .. '|'
      local fv = {}
      for k = fstart, sbase - 1, 2 do
        fv[#fv + 1] = W .. ARGV[k]
        fv[#fv + 1] = ARGV[k + 1]
      end
      chunked('HSET', K_WF, fv)
      if s > 0 then
        local msgs, links, pend = {}, {}, {}
        for k = 1, s do
          local b = sbase + 3 * k - 2
          msgs[#msgs + 1] = ARGV[b]
          msgs[#msgs + 1] = ARGV[b + 2]
          links[#links + 1] = ARGV[b]
          links[#links + 1] = ARGV[b + 1] .. ',' .. h .. ',' .. wfid
          pend[#pend + 1] = ARGV[b]
        end
        chunked('HSET', K_MSG, msgs)
        chunked('HSET', K_WFSTEPS, links)
        chunked('RPUSH', K_PENDING, pend)
        woke = woke + #pend
      end
      out[#out + 1] = 0
      out[#out + 1] = ''
    end
  end
end
if woke > 0 then notify(woke) end
return out
