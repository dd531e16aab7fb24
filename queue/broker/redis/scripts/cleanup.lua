--! keys: completed msg meta errors results wfsteps wf wfids wfdone pending notify wfoutbox +workflow
-- Cleanup: ARGV nowMs, limit. Deletes completed tasks whose retention has
-- passed; a workflow step's task first leaves its state in its workflow
-- (wfKeepEnded: its completion may have written none). Reply: {deleted,
-- more}.
local ids = redis.call('ZRANGEBYSCORE', K_COMPLETED, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  local steps = redis.call('HLEN', K_WFSTEPS) > 0
  if steps then
    local got, metas = hmget(K_WFSTEPS, ids), hmget(K_META, ids)
    local links, attempts = {}, {}
    for k, link in ipairs(got) do
      local m = link and parse(metas[k])
      if m then
        links[#links + 1] = link
        attempts[#attempts + 1] = m.a
      end
    end
    wfKeepEnded(links, attempts)
    wfFlush()
  end
  chunked('ZREM', K_COMPLETED, ids)
  chunked('HDEL', K_MSG, ids)
  chunked('HDEL', K_META, ids)
  chunked('HDEL', K_ERRORS, ids)
  chunked('HDEL', K_RESULTS, ids)
  if steps then chunked('HDEL', K_WFSTEPS, ids) end
end
local more = 0
if #ids == tonumber(ARGV[2]) then more = 1 end
return {#ids, more}
