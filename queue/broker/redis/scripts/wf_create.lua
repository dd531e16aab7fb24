--! keys: msg pending notify wfsteps wf wfids wfcreated wfoutbox +workflow +index
-- CreateWorkflow, for several workflows of the shard at once (workflow.go
-- batches concurrent calls): ARGV K, tag (this shard's hash tag), then K
-- blocks of: wfid, F, F (field, value) pairs of the workflow (names
-- without the handle prefix), S, S (id, step, msg, target, deps) runs of
-- the steps to enqueue now, O, the IDs of the O other steps of the shard.
-- target is "" for a step of this shard, else the hash tag of the shard
-- its task runs in: it is not enqueued here but given to the mover (an
-- "m" order in wfoutbox, workflow.lua), which checks its ID there; the
-- workflow's fields then include tg, this shard's tag. deps is the step's
-- dependents as its link carries them (wfLinkOf). Every other step's task
-- ID must be free in the shard. With K_WFINDEX (given off Redis Cluster
-- only: it is in another slot) each created workflow's entry in the
-- global index (workflow ID -> tag) is written here too. Reply: per block
-- (code, id): 0 created, 1 workflow ID taken, 2 the step task ID id taken,
-- 3 the index names another shard, id (Go looks there, then writes the
-- entry itself and tries again). Blocks are decided in order, each as if
-- alone; the writes of all of them are then a few bulk commands. Each
-- created workflow enters the shard's wfcreated index (ListWorkflows) at
-- its creation time in µs.
local TAG = ARGV[2]
local blocks, wfids, ids = {}, {}, {}
local pos = 3
for k = 1, tonumber(ARGV[1]) do
  local b = {wfid = ARGV[pos], f = tonumber(ARGV[pos + 1]), fstart = pos + 2}
  b.sbase = b.fstart + 2 * b.f
  b.s = tonumber(ARGV[b.sbase])
  b.obase = b.sbase + 5 * b.s + 1
  b.o = tonumber(ARGV[b.obase])
  b.first = #ids + 1
  for j = 1, b.s do
    if ARGV[b.sbase + 5 * j - 1] == '' then ids[#ids + 1] = ARGV[b.sbase + 5 * j - 4] end
  end
  for j = 1, b.o do ids[#ids + 1] = ARGV[b.obase + j] end
  b.last = #ids
  pos = b.obase + b.o + 1
  blocks[k] = b
  wfids[k] = b.wfid
end
local wfTaken = hmget(K_WFIDS, wfids)
local idTaken = hmget(K_MSG, ids)
local inIndex = {}
if K_WFINDEX then inIndex = hmget(K_WFINDEX, wfids) end
local out, seenWf, seenID, accepted = {}, {}, {}, {}
for k, b in ipairs(blocks) do
  local code, which = 0, ''
  if wfTaken[k] or seenWf[b.wfid] then
    code = 1
  elseif inIndex[k] and inIndex[k] ~= TAG then
    code, which = 3, inIndex[k]
  else
    for j = b.first, b.last do
      if idTaken[j] or seenID[ids[j]] then
        code, which = 2, ids[j]
        break
      end
    end
  end
  if code == 0 then
    seenWf[b.wfid] = true
    for j = b.first, b.last do seenID[ids[j]] = true end
    accepted[#accepted + 1] = b
  end
  out[#out + 1] = code
  out[#out + 1] = which
end
if #accepted == 0 then return out end
local h = redis.call('HINCRBY', K_WFIDS, '', #accepted) - #accepted
local handles, fv, msgs, links, pend, created, orders, index = {}, {}, {}, {}, {}, {}, {}, {}
for _, b in ipairs(accepted) do
  h = h + 1
  handles[#handles + 1] = b.wfid
  handles[#handles + 1] = h
  index[#index + 1] = b.wfid
  index[#index + 1] = TAG
  local hs = string.format('%d', h)
  local W = hs .. '|'
  local tg = ''
  for j = b.fstart, b.sbase - 1, 2 do
    if ARGV[j] == 'tg' then tg = ARGV[j + 1] end
    fv[#fv + 1] = W .. ARGV[j]
    fv[#fv + 1] = ARGV[j + 1]
    if ARGV[j] == 'cr' then
      -- ns -> µs by dropping 3 digits: a double holds µs since 1970
      -- exactly, ns it would round.
      local us = string.sub(ARGV[j + 1], 1, -4)
      if us == '' or us == '-' then us = '0' end
      created[#created + 1] = us
      created[#created + 1] = b.wfid
    end
  end
  for j = 1, b.s do
    local a = b.sbase + 5 * j - 4
    if ARGV[a + 3] ~= '' then
      orders[#orders + 1] = ARGV[a]
      orders[#orders + 1] = 'm' .. wfF(ARGV[a + 3]) .. wfF(ARGV[a + 2]) ..
        wfF('@' .. ARGV[a + 1] .. ',' .. hs .. ',' .. wfF(tg) .. b.wfid)
    else
      msgs[#msgs + 1] = ARGV[a]
      msgs[#msgs + 1] = ARGV[a + 2]
      links[#links + 1] = ARGV[a]
      links[#links + 1] = wfLinkOf(ARGV[a + 1], ARGV[a + 4], hs, b.wfid)
      pend[#pend + 1] = ARGV[a]
    end
  end
end
chunked('HSET', K_WFIDS, handles)
if K_WFINDEX then chunked('HSET', K_WFINDEX, index) end
chunked('HSET', K_WF, fv)
zadd(K_WFCREATED, created)
if #pend > 0 then
  chunked('HSET', K_MSG, msgs)
  chunked('HSET', K_WFSTEPS, links)
  chunked('RPUSH', K_PENDING, pend)
  notify(#pend)
end
if #orders > 0 then chunked('HSET', K_WFOUTBOX, orders) end
return out
