--! keys: meta active msg errors results completed tasklocks locks cancels wfsteps pending notify scheduled retry dead wfdone wf wfids wfoutbox wfevents awaiting +stats +workflow
-- Complete: ARGV nowNs, nowMs, then (id, token, result, alt) runs. Tasks
-- with a retention are kept until nowMs + retention, others deleted.
-- Reply: per item 0 done, 1 lease lost. The attempt counts (Attempts+1)
-- on kept tasks. alt is the result's JSON forms for workflow steps
-- (wfLeaf); a task that is a workflow step moves its workflow on, in
-- this script.
local now, nowMs = ARGV[1], tonumber(ARGV[2])
local n = (#ARGV - 2) / 4
local ids = {}
for i = 1, n do ids[i] = ARGV[4 * i - 1] end
local metas = hmget(K_META, ids)
local out, done, gone, errs, keep, results, zc = {}, {}, {}, {}, {}, {}, {}
local steps = {} -- done tasks (while the shard has workflow steps)
local anySteps = redis.call('HLEN', K_WFSTEPS) > 0
for i = 1, n do
  local id, v = ids[i], metas[i]
  -- The fields a completion reads or keeps, in one match: state,
  -- attempts, max retries, retention, token, started.
  local s, a, mr, rets, tk, sa
  if v then s, a, mr, rets, tk, sa = string.match(v, '^(%a),(%d+),([^,]*),(%d+),(%d+),[^,]*,([^,]*),') end
  if s ~= 'a' or tk ~= ARGV[4 * i] then
    out[i] = 1
  else
    metas[i] = false -- a second ack of the same ID in this call is lost
    done[#done + 1] = id
    local res = ARGV[4 * i + 1]
    local ret = tonumber(rets)
    if anySteps then steps[#steps + 1] = {id, res, ARGV[4 * i + 2], tonumber(a) + 1, ret > 0} end
    if ret > 0 then
      -- fmt(parse(v)) with state c, attempts + 1, lease 0, completed
      -- now and no worker, written from the matched fields (no table,
      -- one number formatted).
      keep[#keep + 1] = id
      keep[#keep + 1] = 'c,' .. string.format('%d', tonumber(a) + 1) .. ',' .. mr .. ',' .. rets .. ',' .. tk ..
        ',0,' .. sa .. ',' .. now .. ','
      if res ~= '' then
        results[#results + 1] = id
        results[#results + 1] = res
      end
      zc[#zc + 1] = nowMs + math.ceil(ret / 1000000)
      zc[#zc + 1] = id
    else
      gone[#gone + 1] = id
      if a ~= '0' then errs[#errs + 1] = id end
    end
    out[i] = 0
  end
end
if #steps > 0 then
  -- Their wfsteps entries, read before the tasks are forgotten.
  local ids = {}
  for k, st in ipairs(steps) do ids[k] = st[1] end
  local ls = hmget(K_WFSTEPS, ids)
  local kept = {}
  for k, st in ipairs(steps) do
    if ls[k] then
      st[1] = ls[k]
      kept[#kept + 1] = st
    end
  end
  steps = kept
end
if #done > 0 then
  chunked('ZREM', K_ACTIVE, done)
  unlock(done)
  uncancel(done)
  stat('p', #done, nowMs)
end
if #gone > 0 then
  chunked('HDEL', K_MSG, gone)
  chunked('HDEL', K_META, gone)
  if anySteps then chunked('HDEL', K_WFSTEPS, gone) end
end
if #errs > 0 then chunked('HDEL', K_ERRORS, errs) end
if #keep > 0 then
  chunked('HSET', K_META, keep)
  zadd(K_COMPLETED, zc)
end
if #results > 0 then chunked('HSET', K_RESULTS, results) end
if #steps > 0 then
  WF.nowNs, WF.nowMs = now, nowMs
  wfCompletions(steps)
  wfFlush()
end
if #done > 0 then pushEnded(done) end
return wfMarkCross(out)
