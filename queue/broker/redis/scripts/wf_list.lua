--! keys: wf wfids wfcreated
-- ListWorkflows, one shard: ARGV state letter ('' any), limit, cursor
-- score ('' from the newest), cursor ID, scan cap. Walks the shard's
-- wfcreated index newest first (score, then ID, descending, as ZREVRANGE
-- orders ties), strictly after the cursor, and keeps the workflows in the
-- state until limit are kept or cap entries were looked at (so a filter
-- that matches little cannot make one call long). Reply: {more, score, id}
-- (more 1 if the walk stopped before the index's end; score and id the
-- last entry looked at, '' if none), then per kept workflow (id, score, st,
-- n, open, q, cr, fin, err). An entry whose workflow is gone (cleaned up
-- between two writes of a partial index) is skipped.
local want, limit, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5])
local max, cid = ARGV[3], ARGV[4]
local cscore = tonumber(max)
if max == '' then max = '+inf' end
local out = {0, '', ''}
local kept, seen, offset = 0, 0, 0
local more = false
while true do
  local batch = redis.call('ZREVRANGEBYSCORE', K_WFCREATED, max, '-inf', 'WITHSCORES', 'LIMIT', offset, 100)
  if #batch == 0 then break end
  offset = offset + #batch / 2
  for k = 1, #batch, 2 do
    local id, sc = batch[k], batch[k + 1]
    local after = id ~= SENTINEL
    if after and cscore and tonumber(sc) == cscore and id >= cid then after = false end
    if after then
      if kept >= limit or seen >= cap then
        more = true
        break
      end
      seen = seen + 1
      out[2], out[3] = sc, id
      local h = redis.call('HGET', K_WFIDS, id)
      if h then
        local W = h .. '|'
        local f = redis.call('HMGET', K_WF, W .. 'st', W .. 'n', W .. 'open', W .. 'q', W .. 'cr', W .. 'fin', W .. 'err')
        if f[1] and (want == '' or f[1] == want) then
          kept = kept + 1
          out[#out + 1] = id
          out[#out + 1] = sc
          for i = 1, 7 do out[#out + 1] = f[i] or '' end
        end
      end
    end
  end
  if more then break end
end
if more then out[1] = 1 end
return out
