-- Included after common.lua by the scripts whose keys line ends with
-- "+workflow" (scripts.go): the settle scripts and wf_*.lua. Kept apart so
-- that the other scripts do not define these functions on every call.

-- ---- Workflows (workflow.go) ----
-- A workflow lives in the shard of its steps (so in the same slot): the
-- shard's wfids hash gives it a short handle h (a number), and its fields
-- are "<h>|<name>" in the shard's wf hash (one hash for every workflow of
-- the shard keeps every key a script touches in KEYS, and the handle
-- keeps field names short). Field names:
--   st  state: R running, C completed, F failed, X cancelled
--   q n out ret cr   queue, step count, output input spec, retention ns,
--                    created ns (written by wf_create)
--   open             steps not finished
--   err res fin      error, result, finished ns (when finished)
--   tg    the shard's own hash tag, for a workflow with steps in other
--         slots (foreign steps, below)
--   ne    "1" once a step ended other than by completing (wfEnded):
--         wfCompletions then takes each end alone
--   c<i>  step i's static record: length-prefixed fields (wfFields): task
--         ID, kind, dependents ("3,7"), input spec ("" none, "4",
--         "[0,1,[2]]"), flags ("1" tolerant, "i" immutable: the step
--         waits for its input but runs with its own payload, its message
--         prefix being its whole message), args suffix (input prepended to
--         an "args" payload: '{"args":[' .. input .. suffix), payload error
--         (the step fails to start with it), message prefix (the task's
--         stored message without its payload), the step's task as given
--         (encodeMsg, for GetWorkflow), and for a foreign step a 10th: the
--         hash tag of the shard its task runs in
--   s<i>  state letter (w waiting, e enqueued, c completed, f failed,
--         x cancelled) followed by the attempts once finished; absent
--         until the step changes state: then it is e for a step without
--         input, w for one with (wfStepState). A step that completed may
--         still say e (or nothing) while its task is kept: its task holds
--         its state (wfCompletions, wfKeepEnded)
--   r<i>  inputs not finished yet
--   res<i> v<i> e<i>  result, its JSON forms when not plain (see wfLeaf),
--         error
-- The settle scripts call wfTaskEnded for tasks listed in wfsteps, in the
-- same script, so a step's end and what follows are one atomic step; they
-- set WF.nowNs and WF.nowMs first and call wfFlush last (the wf hash is
-- written back once per call). Every function mirrors the memory
-- broker (memory/workflow.go) step for step, so both give the same
-- payloads, results and errors.
--
-- Foreign steps (xslot.go): a step whose queue is not the workflow's runs
-- in another shard, so in another slot, which no script here may touch.
-- Its start writes an order into the home shard's wfoutbox (wfStart), in
-- the same script as whatever started it; Go's mover carries the order to
-- the target shard (wf_xapply.lua), idempotently, and only then drops it
-- (wf_xdone.lua). Its task's wfsteps entry there is a foreign link
-- "@<step>,<handle>,<len>:<home tag><workflow ID>": when the task ends,
-- wfTaskEnded records the end in that shard's wfevents (wfEvent) in the
-- settle script, and Go's forwarder applies it in the home shard
-- (wf_xevents.lua) with wfTaskEnded again; a step already finished there
-- ignores it, so an event applied twice moves nothing twice. A settle that
-- writes an order or an event sets WF.cross: its reply tells Go to run the
-- mover at once.

local WF = {nowNs = '0', nowMs = 0, cross = false}

-- wfF is one length-prefixed field ("<len>:<bytes>"), as Go's appendField.
local function wfF(v) return string.format('%d', #v) .. ':' .. v end

-- wfSplit reads length-prefixed fields from position pos of s.
local function wfSplit(s, pos)
  local out, n = {}, #s
  pos = pos or 1
  while pos <= n do
    local c = string.find(s, ':', pos, true)
    if not c then break end
    local len = tonumber(string.sub(s, pos, c - 1))
    out[#out + 1] = string.sub(s, c + 1, c + len)
    pos = c + len + 1
  end
  return out
end

-- A local step's wfsteps entry (its link) is "<step>:<deps>,<handle>,<workflow
-- ID>", deps its dependents ("3.7", "" none: the c<i> record's, dots for
-- commas), so that its completion (wfCompleted) need not read its record;
-- "<step>,<handle>,<workflow ID>" (the form before dependents were added,
-- and a foreign step's event link) when that would be longer than
-- WF_LINK_MAX bytes: a completion then reads the record (wfEnded).
local WF_LINK_MAX = 64

local function wfLinkOf(i, deps, h, wfid)
  local link = i .. ':' .. deps .. ',' .. h .. ',' .. wfid
  if #link <= WF_LINK_MAX then return link end
  return i .. ',' .. h .. ',' .. wfid
end

-- wfParseLink returns a local link's step, dependents (nil in the short
-- form), handle and workflow ID; nil if it is no such link. Memoized per
-- call (the prefetch and the step end read each link).
local WF_LINK_LONG = '^(%d+):([%d.]*),(%d+),(.*)$' -- a link with its dependents
local WF_LINKS = {}
local function wfParseLink(link)
  local p = WF_LINKS[link]
  if p == nil then
    local step, deps, h, wfid = string.match(link, WF_LINK_LONG)
    if not step then
      step, h, wfid = string.match(link, '^(%d+),(%d+),(.*)$')
    end
    p = false
    if step then p = {step, deps, h, wfid} end
    WF_LINKS[link] = p
  end
  if not p then return nil end
  return p[1], p[2], p[3], p[4]
end

-- A workflow's own field names, in the order wf_get reads them, and per
-- step (c first, s second): what wf_cleanup deletes.
local WF_HEAD_FIELDS = {'st', 'q', 'n', 'open', 'out', 'ret', 'cr', 'err', 'res', 'fin', 'tg', 'ne'}
local WF_STEP_FIELDS = {'c', 's', 'r', 'res', 'v', 'e'}

-- wfKey returns the prefix of workflow id's fields in the shard's wf
-- hash, or nil if the shard has no such workflow.
local function wfKey(id)
  local h = redis.call('HGET', K_WFIDS, id)
  if not h then return nil end
  return h .. '|'
end

-- wfFields splits a step record of "<len>:<bytes>" fields, the first 8
-- and the 10th (a foreign step's target tag, as out[10]; the 9th, the
-- template, is for Go and skipped unread): memoized per call, as each
-- record is read by several steps of the same call.
local WF_FIELDS = {}
local function wfFields(s)
  local out = WF_FIELDS[s]
  if out then return out end
  out = {}
  local pos, n, k = 1, #s, 0
  while pos <= n and k < 10 do
    local c = string.find(s, ':', pos, true)
    local len = tonumber(string.sub(s, pos, c - 1))
    k = k + 1
    if k ~= 9 then out[k] = string.sub(s, c + 1, c + len) end
    pos = c + len + 1
  end
  WF_FIELDS[s] = out
  return out
end

-- wfHead is the first four fields of a step record (task ID, kind,
-- dependents, input spec): what a step's end reads of its own record,
-- without wfFields' copies of the rest; memoized per call.
local WF_HEAD = {}
local function wfHead(s)
  local out = WF_FIELDS[s] or WF_HEAD[s]
  if out then return out end
  out = {}
  local pos = 1
  for k = 1, 4 do
    local c = string.find(s, ':', pos, true)
    if not c then break end
    local len = tonumber(string.sub(s, pos, c - 1))
    out[k] = string.sub(s, c + 1, c + len)
    pos = c + len + 1
  end
  WF_HEAD[s] = out
  return out
end

-- wfStepState is the state letter of a step from its s and c fields
-- (wf_create writes no s: e without input, w with).
local function wfStepState(s, c)
  if s then return string.sub(s, 1, 1) end
  if not c then return '' end
  if string.match(c, '^%d+:') then
    local f = wfHead(c)
    if f[4] == '' then return 'e' end
    return 'w'
  end
  return ''
end

-- utf8len is the length of the valid UTF-8 sequence at byte i (first byte
-- c >= 0x80), or 0 where Go's utf8.DecodeRune finds an invalid one.
local function utf8len(s, i, c)
  local n, lo, hi
  if c >= 0xC2 and c <= 0xDF then n, lo, hi = 2, 0x80, 0xBF
  elseif c == 0xE0 then n, lo, hi = 3, 0xA0, 0xBF
  elseif (c >= 0xE1 and c <= 0xEC) or c == 0xEE or c == 0xEF then n, lo, hi = 3, 0x80, 0xBF
  elseif c == 0xED then n, lo, hi = 3, 0x80, 0x9F
  elseif c == 0xF0 then n, lo, hi = 4, 0x90, 0xBF
  elseif c >= 0xF1 and c <= 0xF3 then n, lo, hi = 4, 0x80, 0xBF
  elseif c == 0xF4 then n, lo, hi = 4, 0x80, 0x8F
  else return 0 end
  local b = string.byte(s, i + 1)
  if not b or b < lo or b > hi then return 0 end
  for k = 2, n - 1 do
    b = string.byte(s, i + k)
    if not b or b < 0x80 or b > 0xBF then return 0 end
  end
  return n
end

local JSON_ESC = {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
  ['\b'] = '\\b', ['\f'] = '\\f', ['<'] = '\\u003c', ['>'] = '\\u003e', ['&'] = '\\u0026'}

-- jsonString is s as Go's json.Marshal writes a string: HTML characters,
-- U+2028 and U+2029 escaped, invalid UTF-8 bytes as \ufffd.
local function jsonString(s)
  if not string.find(s, '[%z\1-\31"\\<>&\128-\255]') then return '"' .. s .. '"' end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = string.byte(s, i)
    if c < 128 then
      local ch = string.char(c)
      local e = JSON_ESC[ch]
      if e then out[#out + 1] = e
      elseif c < 32 then out[#out + 1] = string.format('\\u%04x', c)
      else out[#out + 1] = ch end
      i = i + 1
    else
      local len = utf8len(s, i, c)
      if len == 0 then
        out[#out + 1] = '\\ufffd'
        i = i + 1
      else
        local seq = string.sub(s, i, i + len - 1)
        if seq == '\226\128\168' then out[#out + 1] = '\\u2028'
        elseif seq == '\226\128\169' then out[#out + 1] = '\\u2029'
        else out[#out + 1] = seq end
        i = i + len
      end
    end
  end
  return '"' .. table.concat(out) .. '"'
end

-- wfParse reads an input spec: a step number, or a list "[a,b,...]".
local function wfParse(s)
  local pos = 1
  local function node()
    if string.sub(s, pos, pos) == '[' then
      pos = pos + 1
      local list = {}
      if string.sub(s, pos, pos) == ']' then
        pos = pos + 1
        return list
      end
      while true do
        list[#list + 1] = node()
        local d = string.sub(s, pos, pos)
        pos = pos + 1
        if d ~= ',' then return list end
      end
    end
    local a, b = string.find(s, '^%d+', pos)
    pos = b + 1
    return tonumber(string.sub(s, a, b))
  end
  return node()
end

-- Write-back cache of the wf hash for one script call: a Redis command
-- costs far more than a Lua table access, so a call reads each field once
-- (wfMGet batches the misses) and writes every change in one HSET at the
-- end (wfFlush: every script that moves workflows calls it last).
local WFC, WFD, WFDN = {}, {}, {}

local function wfGet(f)
  local v = WFC[f]
  if v == nil then
    v = redis.call('HGET', K_WF, f) or false
    WFC[f] = v
  end
  return v
end

-- wfMGet returns the values of fields (false where absent).
local function wfMGet(fields)
  local miss = {}
  for _, f in ipairs(fields) do
    if WFC[f] == nil then miss[#miss + 1] = f end
  end
  if #miss > 0 then
    local vals = hmget(K_WF, miss)
    for j = 1, #miss do WFC[miss[j]] = vals[j] or false end
  end
  local out = {}
  for k, f in ipairs(fields) do out[k] = WFC[f] end
  return out
end

local function wfSet(f, v)
  WFC[f] = v
  if not WFD[f] then
    WFD[f] = true
    WFDN[#WFDN + 1] = f
  end
end

-- wfIncr adds d to a counter field (open, r<i>): the cache holds it as a
-- number, formatted once by wfFlush.
local function wfIncr(f, d)
  local v = tonumber(wfGet(f) or '0') + d
  wfSet(f, v)
  return v
end

-- Steps started in this call (wfStart): their tasks are written by
-- wfFlush in bulk, as enqueue.lua writes a batch. WF_NEWMSG[id] is the
-- message of a task not written yet.
local WF_NEW, WF_NEWMSG, WF_NEWLINK = {}, {}, {}

-- WF_MSGX[id]: whether task id is in the shard's msg hash, read ahead for
-- the steps a call is about to start (wfPrefetch); nil when not read.
-- Kept true by wfMaterialize, dropped by wfFlush (the only writers of
-- msg in a call after the prefetch).
local WF_MSGX = {}

-- Orders for foreign steps written in this call (wfStart, wfFinish): task
-- ID -> order, written to wfoutbox by wfFlush. An order is a kind letter
-- then fields (wfF): "m" move (target tag, message, link): enqueue the
-- task there; "x" cancel (target tag, message or "", link, error record):
-- cancel the task there as CancelTask does, or store it dead if it is not
-- there yet and the message is given.
local WF_XOUT, WF_XOUTN = {}, {}

-- wfdone entries (score, workflow ID) of workflows finished in this call,
-- added by wfFlush in one zadd.
local WF_DONE = {}

local function wfOrder(id, order)
  if not WF_XOUT[id] then WF_XOUTN[#WF_XOUTN + 1] = id end
  WF_XOUT[id] = order
end

-- wfXLink is the foreign link of step i of the workflow with prefix W.
local function wfXLink(W, i, wfid)
  return '@' .. i .. ',' .. string.sub(W, 1, -2) .. ',' .. wfF(WFC[W .. 'tg'] or redis.call('HGET', K_WF, W .. 'tg') or '') .. wfid
end

-- wfMaterialize writes a started step's task now (wfFinish cancels it as
-- a pending task); it is then left out of the bulk write.
local function wfMaterialize(id)
  redis.call('HSET', K_MSG, id, WF_NEWMSG[id])
  redis.call('HSET', K_WFSTEPS, id, WF_NEWLINK[id])
  WF_NEWMSG[id] = nil
  WF_MSGX[id] = true
end

local function wfFlush()
  if #WFDN > 0 then
    local fv = {}
    for _, f in ipairs(WFDN) do
      local v = WFC[f]
      if type(v) == 'number' then v = string.format('%d', v) end
      fv[#fv + 1] = f
      fv[#fv + 1] = v
    end
    chunked('HSET', K_WF, fv)
    WFD, WFDN = {}, {}
  end
  if #WF_DONE > 0 then
    zadd(K_WFDONE, WF_DONE)
    WF_DONE = {}
  end
  if #WF_NEW > 0 then
    local msgs, links, pend = {}, {}, {}
    for _, id in ipairs(WF_NEW) do
      if WF_NEWMSG[id] then
        msgs[#msgs + 1] = id
        msgs[#msgs + 1] = WF_NEWMSG[id]
        links[#links + 1] = id
        links[#links + 1] = WF_NEWLINK[id]
        pend[#pend + 1] = id
      end
    end
    if #pend > 0 then
      chunked('HSET', K_MSG, msgs)
      chunked('HSET', K_WFSTEPS, links)
      chunked('RPUSH', K_PENDING, pend)
      notify(#pend)
    end
    WF_NEW, WF_NEWMSG, WF_NEWLINK, WF_MSGX = {}, {}, {}, {}
  end
  if #WF_XOUTN > 0 then
    local fv = {}
    for _, id in ipairs(WF_XOUTN) do
      fv[#fv + 1] = id
      fv[#fv + 1] = WF_XOUT[id]
    end
    chunked('HSET', K_WFOUTBOX, fv)
    WF_XOUT, WF_XOUTN = {}, {}
    WF.cross = true
  end
end

-- The state letters of a step that ended without a value. Only a step
-- that ended is read as an input or an output, and one that completed may
-- still say e, or nothing (wfCompletions): what is not one of these reads
-- as completed.
local WF_FAILED = {f = true, x = true}

-- wfLeaf returns step i's value as its raw and compact JSON and its error
-- ('' if none): broker.InputValue's jsonValue. L holds each leaf's (s,
-- res, v, e) fields, read in one HMGET (wfInput). v<i> holds what Go found
-- when the result is not already compact JSON: 'c' .. compact form, or 'q'
-- .. the JSON string of an invalid result.
local function wfLeaf(L, i)
  local r = L[i]
  if WF_FAILED[string.sub(r[1] or '', 1, 1)] then return 'null', 'null', r[4] or '' end
  local res, v = r[2], r[3]
  if not res or res == '' then return 'null', 'null', '' end
  if not v then return res, res, '' end
  local x = string.sub(v, 2)
  if string.sub(v, 1, 1) == 'c' then return res, x, '' end
  return x, x, ''
end

-- wfRaw is wfLeaf's raw JSON of a completed step with result res and its
-- forms alt, as a settle script has them ('' for none).
local function wfRaw(res, alt)
  if res == '' then return 'null' end
  if alt == '' or string.sub(alt, 1, 1) == 'c' then return res end
  return string.sub(alt, 2)
end

-- wfTolerant is a tolerant list's element of value v and error e.
local function wfTolerant(v, e)
  if e ~= '' then
    return '{"error":{"message":' .. jsonString(e) .. ',"type":"StepFailed"},"ok":false}'
  end
  return '{"ok":true,"result":' .. v .. '}'
end

-- wfVal is broker.InputValue's val for a list or a step: compact JSON and
-- the first error. With tol every list element is wrapped as ok/error.
local function wfVal(L, node, tol)
  if type(node) == 'number' then
    local _, c, e = wfLeaf(L, node)
    return c, e
  end
  local parts, first = {}, ''
  for k = 1, #node do
    local v, e = wfVal(L, node[k], tol)
    if tol then v, e = wfTolerant(v, e), '' end
    parts[k] = v
    if first == '' then first = e end
  end
  return '[' .. table.concat(parts, ',') .. ']', first
end

local function wfLeaves(node, out)
  if type(node) == 'number' then
    out[#out + 1] = node
  else
    for k = 1, #node do wfLeaves(node[k], out) end
  end
end

-- wfLeafVals reads the (s, res, v, e) fields of steps leaves as wfLeaf
-- takes them (L[i]): s and res first, then only what wfLeaf will look at
-- (v of a completed step with a result, e of one not completed), as each
-- field read in the shard's wf hash costs.
local function wfLeafVals(W, leaves)
  local a = {}
  if WFC[W .. 'st'] == 'R' and WFC[W .. 'ne'] == false then
    -- A running workflow in which no step has ended but by completing
    -- (both read already, as wfCompletions does): every input read is a
    -- value, and its state need not be read.
    local f1 = {}
    for k, i in ipairs(leaves) do f1[k] = W .. 'res' .. i end
    local r = wfMGet(f1)
    for k = 1, #leaves do a[2 * k] = r[k] end
  else
    local f1 = {}
    for k, i in ipairs(leaves) do
      f1[2 * k - 1] = W .. 's' .. i
      f1[2 * k] = W .. 'res' .. i
    end
    a = wfMGet(f1)
  end
  local f2, want = {}, {}
  for k, i in ipairs(leaves) do
    if not WF_FAILED[string.sub(a[2 * k - 1] or '', 1, 1)] then
      local res = a[2 * k]
      if res and res ~= '' then
        f2[#f2 + 1] = W .. 'v' .. i
        want[k] = 3
      end
    else
      f2[#f2 + 1] = W .. 'e' .. i
      want[k] = 4
    end
  end
  local b = wfMGet(f2)
  local L, j = {}, 0
  for k, i in ipairs(leaves) do
    local r = {a[2 * k - 1], a[2 * k], false, false}
    if want[k] then
      j = j + 1
      r[want[k]] = b[j]
    end
    L[i] = r
  end
  return L
end

-- wfInput is broker.InputValue: raw and compact JSON of an input spec.
local function wfInput(W, spec, tol)
  if string.find(spec, '^%d+$') then
    -- One step's value (a chain's input, a chord's output).
    local raw, c = wfLeaf(wfLeafVals(W, {spec}), spec)
    return raw, c
  end
  if string.find(spec, '^%[[%d,]*%]$') then
    -- A list of steps (a chord's body): wfVal's list without the parser,
    -- step numbers kept as the strings they are in the spec.
    local leaves = {}
    for d in string.gmatch(spec, '%d+') do leaves[#leaves + 1] = d end
    local L = wfLeafVals(W, leaves)
    local parts = {}
    for k, i in ipairs(leaves) do
      local _, c, e = wfLeaf(L, i)
      if tol then c = wfTolerant(c, e) end
      parts[k] = c
    end
    local v = '[' .. table.concat(parts, ',') .. ']'
    return v, v
  end
  local node = wfParse(spec)
  local leaves = {}
  wfLeaves(node, leaves)
  local L = wfLeafVals(W, leaves)
  if type(node) == 'number' then
    local raw, c = wfLeaf(L, node)
    return raw, c
  end
  local v = wfVal(L, node, tol)
  return v, v
end

local function wfCancelRecord(msg)
  return '{"t":' .. WF.nowNs .. ',"k":"cancelled","m":' .. jsonString(msg) .. '}'
end

-- wfRemovePending drops ids (a set) from the pending list: LREM each when
-- few, else one rewrite of the list.
local function wfRemovePending(set, n)
  if n == 0 then return end
  if n <= 16 then
    for id in pairs(set) do redis.call('LREM', K_PENDING, -1, id) end
    return
  end
  local all = redis.call('LRANGE', K_PENDING, 0, -1)
  local keep = {}
  for _, id in ipairs(all) do
    if not set[id] then keep[#keep + 1] = id end
  end
  redis.call('DEL', K_PENDING)
  if #keep > 0 then chunked('RPUSH', K_PENDING, keep) end
end

local function wfState(W) return wfGet(W .. 'st') end

local function wfOpen(W, delta) return wfIncr(W .. 'open', delta) end

local WF_WORDS = {C = 'completed', F = 'failed', X = 'cancelled'}

-- wfFinish ends a running workflow; a failed or cancelled one cancels its
-- unfinished steps: waiting ones are marked, enqueued ones cancelled as by
-- CancelTask (pending, scheduled, retry: dead now; active: flagged).
local function wfFinish(W, wfid, st, reason, result)
  if wfState(W) ~= 'R' then return end
  local h = wfMGet({W .. 'ret', W .. 'n'})
  wfSet(W .. 'st', st)
  wfSet(W .. 'err', reason)
  wfSet(W .. 'fin', WF.nowNs)
  if result then wfSet(W .. 'res', result) end
  WF_DONE[#WF_DONE + 1] = WF.nowMs + math.ceil(tonumber(h[1]) / 1000000)
  WF_DONE[#WF_DONE + 1] = wfid
  if st == 'C' then return end
  local n = tonumber(h[2])
  local fields = {}
  for i = 0, n - 1 do
    fields[2 * i + 1] = W .. 's' .. i
    fields[2 * i + 2] = W .. 'c' .. i
  end
  local states = wfMGet(fields)
  local pend, npend, open = {}, 0, 0
  local msg = 'workflow ' .. WF_WORDS[st] .. ': ' .. reason
  for i = 0, n - 1 do
    local s = wfStepState(states[2 * i + 1], states[2 * i + 2])
    if s == 'w' then
      wfSet(W .. 's' .. i, 'x')
      wfSet(W .. 'e' .. i, 'cancelled: ' .. reason)
      open = open + 1
    elseif s == 'e' and wfFields(states[2 * i + 2])[10] then
      -- A foreign step: its task is in another slot. Not moved yet (its
      -- move order is still in the outbox): it is cancelled now, as a
      -- pending task, and the order becomes one that stores it dead
      -- there. Moved: an order to cancel it there; its end comes back as
      -- an event.
      local c = wfFields(states[2 * i + 2])
      local id = c[1]
      local cur = WF_XOUT[id] or redis.call('HGET', K_WFOUTBOX, id)
      local rec = wfCancelRecord(msg)
      if cur and string.sub(cur, 1, 1) == 'm' then
        local o = wfSplit(cur, 2)
        wfOrder(id, 'x' .. wfF(o[1]) .. wfF(o[2]) .. wfF(o[3]) .. wfF(rec))
        wfSet(W .. 's' .. i, 'x0')
        wfSet(W .. 'e' .. i, msg)
        open = open + 1
      elseif not cur then
        wfOrder(id, 'x' .. wfF(c[10]) .. wfF('') .. wfF(wfXLink(W, i, wfid)) .. wfF(rec))
      end
    elseif s == 'e' then
      local id = wfFields(states[2 * i + 2])[1]
      if WF_NEWMSG[id] then wfMaterialize(id) end
      local m = taskMeta(id)
      if m and m.s == 'p' then
        pend[id] = true -- removed from the list with the others, once
        npend = npend + 1
      end
      if m and waitingToDead(id, m, wfCancelRecord(msg), WF.nowMs, true) then
        wfSet(W .. 's' .. i, 'x' .. m.a)
        wfSet(W .. 'e' .. i, msg)
        open = open + 1
      elseif m and m.s == 'a' then
        redis.call('HSET', K_CANCELS, id, '1')
      end
    end
  end
  if open > 0 then wfOpen(W, -open) end
  wfRemovePending(pend, npend)
end

-- wfStart enqueues step i (static record c) with its input; it returns an
-- error message if the step cannot start (it then fails).
local function wfStart(W, wfid, i, c)
  local id, payload = c[1], ''
  if c[4] ~= '' and not string.find(c[5], 'i', 1, true) then
    if c[7] ~= '' then return c[7] end
    local raw, compact = wfInput(W, c[4], string.find(c[5], '1', 1, true) ~= nil)
    if c[6] ~= '' then
      payload = '{"args":[' .. compact .. c[6]
    else
      payload = raw
    end
  end
  if c[10] then
    -- A foreign step: an order for the mover (xslot.go), which checks its
    -- ID in the target shard.
    wfOrder(id, 'm' .. wfF(c[10]) .. wfF(c[8] .. payload) .. wfF(wfXLink(W, i, wfid)))
    wfSet(W .. 's' .. i, 'e')
    return nil
  end
  local taken = WF_MSGX[id]
  if taken == nil then taken = redis.call('HEXISTS', K_MSG, id) == 1 end
  if WF_NEWMSG[id] or taken then
    return 'enqueue: task "' .. id .. '" in queue "' .. wfGet(W .. 'q') .. '": task ID already exists'
  end
  WF_NEW[#WF_NEW + 1] = id
  WF_NEWMSG[id] = c[8] .. payload
  local deps = c[3]
  if string.find(deps, ',', 1, true) then deps = (string.gsub(deps, ',', '.')) end
  WF_NEWLINK[id] = wfLinkOf(i, deps, string.sub(W, 1, -2), wfid)
  wfSet(W .. 's' .. i, 'e')
  return nil
end

local STEP_WORDS = {c = 'completed', f = 'failed', x = 'cancelled'}

-- wfDeps is a dependents field ("3,7") as a list of step numbers, kept as
-- strings (they only name fields): memoized per call, as the members of a
-- chord share one.
local WF_DEPS = {}
local function wfDeps(s)
  local out = WF_DEPS[s]
  if out then return out end
  out = {}
  for d in string.gmatch(s, '%d+') do out[#out + 1] = d end
  WF_DEPS[s] = out
  return out
end

-- wfGet2 is wfMGet of two fields, without its tables when both are cached.
local function wfGet2(a, b)
  local x, y = WFC[a], WFC[b]
  if x == nil or y == nil then
    local r = wfMGet({a, b})
    return r[1], r[2]
  end
  return x, y
end

-- wfEnded records the end of step i (how: c completed, f failed, x
-- cancelled) and moves the workflow on: memory/workflow.go's stepEnded,
-- depth first like its recursion but with an explicit stack, so a chain
-- of any length cannot overflow Lua's. Step numbers are strings here
-- (they name fields; converting numbers costs a sprintf each time).
local function wfEnded(W, wfid, i, how, res, alt, msg, attempts)
  local stack = {{i = i, how = how, res = res, alt = alt, msg = msg, a = attempts}}
  while #stack > 0 do
    local f = stack[#stack]
    local child
    if not f.deps then
      local r1, r2 = wfGet2(W .. 's' .. f.i, W .. 'c' .. f.i)
      local s = wfStepState(r1, r2)
      if not r2 or s == 'c' or s == 'f' or s == 'x' then
        stack[#stack] = nil
      else
        wfSet(W .. 's' .. f.i, f.how .. (f.a or ''))
        if f.how ~= 'c' then wfSet(W .. 'ne', '1') end
        if f.res and f.res ~= '' then wfSet(W .. 'res' .. f.i, f.res) end
        if f.alt and f.alt ~= '' then wfSet(W .. 'v' .. f.i, f.alt) end
        if f.msg and f.msg ~= '' then wfSet(W .. 'e' .. f.i, f.msg) end
        if f.how == 'c' then
          -- A step ends once and only its end writes these: those not
          -- written now are absent (wfInput of its followers reads them).
          local fr, fv, fe = W .. 'res' .. f.i, W .. 'v' .. f.i, W .. 'e' .. f.i
          if WFC[fr] == nil then WFC[fr] = false end
          if WFC[fv] == nil then WFC[fv] = false end
          if WFC[fe] == nil then WFC[fe] = false end
        end
        wfOpen(W, -1)
        f.running = wfState(W) == 'R'
        local c = wfHead(r2)
        f.deps = wfDeps(c[3])
        f.k = 1
        if f.how ~= 'c' and f.running then
          f.reason = 'step ' .. f.i .. ' (' .. c[2] .. ') ' .. STEP_WORDS[f.how] .. ': ' .. (f.msg or '')
          if #f.deps == 0 then wfFinish(W, wfid, 'F', f.reason) end
        end
      end
    end
    if f.deps then
      while f.k <= #f.deps and not child do
        local d = f.deps[f.k]
        f.k = f.k + 1
        if f.how == 'c' then
          if not f.running then break end
          if wfIncr(W .. 'r' .. d, -1) == 0 then
            local r1, r2 = wfGet2(W .. 's' .. d, W .. 'c' .. d)
            if wfStepState(r1, r2) == 'w' then
              local err = wfStart(W, wfid, d, wfFields(r2))
              if err then child = {i = d, how = 'f', msg = err} end
            end
          end
        else
          if not f.running or wfState(W) ~= 'R' then break end
          local r1, r2 = wfGet2(W .. 's' .. d, W .. 'c' .. d)
          if wfStepState(r1, r2) == 'w' then
            local c = wfFields(r2)
            if string.find(c[5], '1', 1, true) then
              if wfIncr(W .. 'r' .. d, -1) == 0 then
                local err = wfStart(W, wfid, d, c)
                if err then child = {i = d, how = 'f', msg = err} end
              end
            else
              child = {i = d, how = 'x', msg = 'cancelled: ' .. f.reason}
            end
          end
        end
      end
      if child then
        stack[#stack + 1] = child
      else
        if wfState(W) == 'R' and tonumber(wfGet(W .. 'open')) == 0 then
          -- What wfFinish reads too, in one HMGET.
          local raw = wfInput(W, wfMGet({W .. 'out', W .. 'ret', W .. 'n'})[1], false)
          wfFinish(W, wfid, 'C', '', raw)
        end
        stack[#stack] = nil
      end
    end
  end
end

-- wfInputsEnded counts k more inputs of step d completed: when none is
-- left and the step waits, it starts, or fails if it cannot (wfStart).
local function wfInputsEnded(W, wfid, d, k)
  if wfIncr(W .. 'r' .. d, -k) ~= 0 then return end
  local r1, r2 = wfGet2(W .. 's' .. d, W .. 'c' .. d)
  if wfStepState(r1, r2) == 'w' then
    local err = wfStart(W, wfid, d, wfFields(r2))
    if err then wfEnded(W, wfid, d, 'f', nil, nil, err) end
  end
end

-- wfCompleted is wfEnded for a completed step i whose link carried its
-- dependents deps: the same transitions, without reading the step's
-- record (its state, and for each dependent its input count, are what it
-- reads; a dependent that starts is read whole, and one that cannot start
-- fails through wfEnded).
local function wfCompleted(W, wfid, i, deps, res, alt, attempts)
  local fs = W .. 's' .. i
  local s = wfGet(fs)
  if s then
    local l = string.sub(s, 1, 1)
    if l == 'c' or l == 'f' or l == 'x' then return end
  end
  -- No s: enqueued (a step with a task, which only a start gives it).
  wfSet(fs, 'c' .. (attempts or ''))
  -- A step ends once and only its end writes these: those not written
  -- now are absent (wfInput of its followers reads them).
  local fr, fv, fe = W .. 'res' .. i, W .. 'v' .. i, W .. 'e' .. i
  if res and res ~= '' then wfSet(fr, res) elseif WFC[fr] == nil then WFC[fr] = false end
  if alt and alt ~= '' then wfSet(fv, alt) elseif WFC[fv] == nil then WFC[fv] = false end
  if WFC[fe] == nil then WFC[fe] = false end
  local open = wfIncr(W .. 'open', -1)
  if wfState(W) ~= 'R' then return end
  if deps ~= '' then
    for _, d in ipairs(wfDeps(deps)) do wfInputsEnded(W, wfid, d, 1) end
    if wfState(W) ~= 'R' then return end
    open = tonumber(wfGet(W .. 'open'))
  end
  if open == 0 then
    -- What wfFinish reads too, in one HMGET.
    local raw = wfInput(W, wfMGet({W .. 'out', W .. 'ret', W .. 'n'})[1], false)
    wfFinish(W, wfid, 'C', '', raw)
  end
end

-- wfTaskEnded is called by the settle scripts for a task that ended: how
-- c completed, f dead, x dead as cancelled, g deleted; link is its wfsteps
-- entry (read before the task was forgotten: wfLinkOf's forms, or a
-- foreign link). Handles are never reused: a workflow cleaned up has no
-- fields left, and its steps' ends are ignored.
local function wfTaskEnded(link, how, res, alt, msg, attempts)
  if string.sub(link, 1, 1) == '@' then
    -- A foreign step's task: its end goes to the home shard as an event
    -- (the first end of this link kept until the forwarder applies it).
    redis.call('HSETNX', K_WFEVENTS, link, wfF(how) .. wfF(tostring(attempts or '')) .. wfF(msg or '') ..
      wfF(res or '') .. wfF(alt or ''))
    WF.cross = true
    return
  end
  local step, deps, h, wfid = wfParseLink(link)
  if not step then return end
  local W = h .. '|'
  if not wfState(W) then return end
  if how == 'c' and deps then return wfCompleted(W, wfid, step, deps, res, alt, attempts) end
  if how == 'g' then how, msg = 'f', 'task deleted' end
  wfEnded(W, wfid, step, how, res, alt, msg, attempts)
end

-- wfPrefetchStarts reads ahead what starting dependents costs (a chord's
-- body once its last members end; starts: {W, step} each): their state
-- and record, with the fields extra (optional) in the same HMGET, then
-- whether their task IDs are free, in one HMGET each instead of two calls
-- per start.
local function wfPrefetchStarts(starts, extra)
  local more = {}
  for k, x in ipairs(starts) do
    more[2 * k - 1] = x[1] .. 's' .. x[2]
    more[2 * k] = x[1] .. 'c' .. x[2]
  end
  if extra then
    for _, f in ipairs(extra) do more[#more + 1] = f end
  end
  if #more == 0 then return end
  local v = wfMGet(more)
  local ids = {}
  for k = 1, #starts do
    local c = v[2 * k]
    if c and wfStepState(v[2 * k - 1], c) == 'w' then
      local f = wfFields(c)
      if not f[10] then ids[#ids + 1] = f[1] end
    end
  end
  if #ids == 0 then return end
  local got = hmget(K_MSG, ids)
  for k, id in ipairs(ids) do WF_MSGX[id] = got[k] ~= false end
end

-- wfPrefetch reads, in one HMGET, what the completions of links (wfsteps
-- entries) will read first: the workflow's state and open count, the
-- step's state, and its dependents' input counts (a link with them) or
-- its record (one without); then, in one more HMGET each, what starting
-- the dependents that these ends would complete reads.
local function wfPrefetch(links)
  -- ending: per input-count field, how many of these ends decrement it.
  local fields, seen, ending, counts = {}, {}, {}, {}
  for _, link in ipairs(links) do
    local step, deps, h = wfParseLink(link)
    if step then
      local W = h .. '|'
      if not seen[h] then
        -- Once per workflow: a chord's members share these.
        seen[h] = true
        fields[#fields + 1] = W .. 'st'
        fields[#fields + 1] = W .. 'open'
      end
      fields[#fields + 1] = W .. 's' .. step
      if not deps then
        fields[#fields + 1] = W .. 'c' .. step
      elseif deps ~= '' then
        for _, d in ipairs(wfDeps(deps)) do
          local f = W .. 'r' .. d
          local n = ending[f]
          if not n then
            fields[#fields + 1] = f
            counts[#counts + 1] = {W, d, f}
          end
          ending[f] = (n or 0) + 1
        end
      end
    end
  end
  if #fields == 0 then return end
  wfMGet(fields)
  local starts = {}
  for _, x in ipairs(counts) do
    if tonumber(WFC[x[3]] or '0') <= ending[x[3]] then starts[#starts + 1] = x end
  end
  wfPrefetchStarts(starts)
end

-- wfCompletions is wfTaskEnded(link, 'c', result, alt, '', attempts) for
-- each {link, result, alt, attempts, kept} of steps, the completed tasks
-- of one settle call, with what most of them need made cheap (each Lua
-- operation here costs about as much as a field Redis reads): a kept
-- task with a local link that carries its dependents, in a running
-- workflow none of whose steps ended otherwise (no ne field), writes no
-- state of its own. Its task says it completed (and with how many
-- attempts) for as long as the task is kept, and wfKeepEnded writes the
-- state into the workflow before the task goes; what the workflow needs
-- of it now is its result (res, v: as wfCompleted writes them) and the
-- counts it ends: the workflow's open count and each dependent's input
-- count, decremented once per workflow for all of its tasks in the call.
-- A task completes once (its lease), and in a workflow without ne no
-- step has ended but by completing, so none of these steps had ended.
-- Readers of an ended step take one that says e, or nothing, as
-- completed (WF_FAILED); wf_get's reader asks the task (workflow.go).
-- Every other end goes the one-by-one way.
local function wfCompletions(steps)
  local groups, order, slow = {}, {}, {}
  local fields = {}
  for k = 1, #steps do
    local st = steps[k]
    local step, deps, h, wfid
    -- The match alone, not wfParseLink: each link is seen once here.
    if st[5] then step, deps, h, wfid = string.match(st[1], WF_LINK_LONG) end
    if step then
      local g = groups[h]
      if not g then
        -- ends: its tasks (indices in steps), nums: their steps, bydeps:
        -- per distinct dependents field, the number of its tasks.
        g = {W = h .. '|', wfid = wfid, ends = {}, nums = {}, bydeps = {}}
        groups[h] = g
        order[#order + 1] = g
        fields[#fields + 1] = g.W .. 'st'
        fields[#fields + 1] = g.W .. 'open'
        fields[#fields + 1] = g.W .. 'ne'
      end
      local n = #g.ends + 1
      g.ends[n], g.nums[n] = k, step
      if deps ~= '' then g.bydeps[deps] = (g.bydeps[deps] or 0) + 1 end
    else
      slow[#slow + 1] = st
    end
  end
  -- The dependents' input counts, in the same HMGET: dec[d] of the ends
  -- are inputs of step d, ds the steps d in order.
  for _, g in ipairs(order) do
    g.dec, g.ds = {}, {}
    for deps, n in pairs(g.bydeps) do
      for _, d in ipairs(wfDeps(deps)) do
        if not g.dec[d] then
          g.ds[#g.ds + 1] = d
          fields[#fields + 1] = g.W .. 'r' .. d
        end
        g.dec[d] = (g.dec[d] or 0) + n
      end
    end
  end
  if #fields > 0 then wfMGet(fields) end
  local starts, extra = {}, {}
  for _, g in ipairs(order) do
    local W = g.W
    g.lazy = WFC[W .. 'st'] == 'R' and not WFC[W .. 'ne']
    if g.lazy then
      for _, d in ipairs(g.ds) do
        if tonumber(WFC[W .. 'r' .. d] or '0') <= g.dec[d] then starts[#starts + 1] = {W, d} end
      end
      if tonumber(WFC[W .. 'open'] or '0') <= #g.ends then
        -- It finishes in this call: what wfFinish reads.
        extra[#extra + 1] = W .. 'out'
        extra[#extra + 1] = W .. 'ret'
        extra[#extra + 1] = W .. 'n'
      end
    else
      -- Finished, gone (wfTaskEnded ignores it) or with a step that ended
      -- otherwise: each end alone.
      for _, k in ipairs(g.ends) do slow[#slow + 1] = steps[k] end
    end
  end
  wfPrefetchStarts(starts, extra)
  for _, g in ipairs(order) do
    if g.lazy then
      local W, wfid, ends, nums = g.W, g.wfid, g.ends, g.nums
      for j = 1, #ends do
        local st = steps[ends[j]]
        if st[2] ~= '' then wfSet(W .. 'res' .. nums[j], st[2]) end
        if st[3] ~= '' then wfSet(W .. 'v' .. nums[j], st[3]) end
      end
      wfIncr(W .. 'open', -#ends)
      for _, d in ipairs(g.ds) do
        if wfState(W) ~= 'R' then break end
        wfInputsEnded(W, wfid, d, g.dec[d])
      end
      if wfState(W) == 'R' and tonumber(wfGet(W .. 'open')) == 0 then
        -- The output is most often one step, that ended last: in this
        -- call, its value is at hand.
        local out, raw = wfGet(W .. 'out'), nil
        for j = #ends, 1, -1 do
          if nums[j] == out then
            local st = steps[ends[j]]
            raw = wfRaw(st[2], st[3])
            break
          end
        end
        wfFinish(W, wfid, 'C', '', raw or wfInput(W, out, false))
      end
    end
  end
  if #slow > 0 then
    local links = {}
    for k, st in ipairs(slow) do links[k] = st[1] end
    wfPrefetch(links)
    for _, st in ipairs(slow) do wfTaskEnded(st[1], 'c', st[2], st[3], '', st[4]) end
  end
end

-- wfKeepEnded is called for completed tasks about to be forgotten
-- (cleanup.lua, delete.lua), their links and attempts given in two lists:
-- a step that completed without writing its state (wfCompletions) gets it
-- now, so its workflow still says completed, and how many attempts, once
-- the task is gone. Such a step says e or nothing (a step whose task
-- completed was started); a workflow cleaned up has no st. One HMGET for
-- all of them.
local function wfKeepEnded(links, attempts)
  local fields, at = {}, {}
  for k, link in ipairs(links) do
    local step, _, h = wfParseLink(link)
    if step then
      at[#at + 1] = {h .. '|', step, attempts[k]}
      fields[#fields + 1] = h .. '|st'
      fields[#fields + 1] = h .. '|s' .. step
    end
  end
  if #fields == 0 then return end
  wfMGet(fields)
  for _, x in ipairs(at) do
    local fs = x[1] .. 's' .. x[2]
    local s = WFC[fs]
    if WFC[x[1] .. 'st'] and (not s or string.sub(s, 1, 1) == 'e') then wfSet(fs, 'c' .. (x[3] or '')) end
  end
end

-- wfLink returns task id's wfsteps entry, or nil: free when the shard
-- holds no workflow step.
local function wfLink(id)
  if redis.call('HLEN', K_WFSTEPS) == 0 then return nil end
  return redis.call('HGET', K_WFSTEPS, id) or nil
end

-- wfErrorEnd is wfTaskEnded for a task that went dead with error record
-- rec: its step is cancelled if the record's kind is, else failed.
local function wfErrorEnd(link, rec, attempts)
  local ok, e = pcall(cjson.decode, rec)
  local msg = ''
  if ok and type(e) == 'table' and type(e.m) == 'string' then msg = e.m end
  local how = 'f'
  if ok and type(e) == 'table' and e.k == 'cancelled' then how = 'x' end
  wfTaskEnded(link, how, nil, nil, msg, attempts)
end

-- wfMarkCross is the reply of a settle script (0 done, 1 lease lost per
-- item): when the call wrote an order or an event for another slot, a 2
-- in place of the first 0 tells Go to run the mover now (xslot.go).
local function wfMarkCross(out)
  if WF.cross then
    for i = 1, #out do
      if out[i] == 0 then
        out[i] = 2
        break
      end
    end
  end
  return out
end

-- wfReset gives a call fresh per-call state. A script run with EVALSHA
-- runs this whole file on every call, so its tables start empty anyway;
-- as a function of the library (functions.go) the file runs once, at load,
-- and these tables would otherwise carry one call's cache into the next.
-- Every table above that a call writes is here (TestWorkflowResetCoversState).
local function wfReset()
  WF.nowNs, WF.nowMs, WF.cross = '0', 0, false
  WF_LINKS, WF_FIELDS, WF_HEAD, WF_DEPS = {}, {}, {}, {}
  WFC, WFD, WFDN = {}, {}, {}
  WF_NEW, WF_NEWMSG, WF_NEWLINK, WF_MSGX = {}, {}, {}, {}
  WF_XOUT, WF_XOUTN, WF_DONE = {}, {}, {}
end
