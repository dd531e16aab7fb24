--! keys: meta msg pending notify scheduled retry dead errors cancels tasklocks locks wfsteps wfdone wf wfids wfoutbox wfevents +workflow
-- Forwarder, in a home shard (xslot.go): ARGV nowNs, nowMs, then runs of
-- (link, how, attempts, message, result, alt) of foreign steps' task ends,
-- link being "<step>,<handle>,<workflow ID>" (wfTaskEnded's, without the
-- foreign form's home tag). Each moves its workflow on as a settle script
-- of this shard would; a step already finished ignores it, so an event
-- applied twice changes nothing. Reply: the orders in the outbox (the
-- mover has work if above 0).
WF.nowNs, WF.nowMs = ARGV[1], tonumber(ARGV[2])
local links = {}
for i = 3, #ARGV, 6 do links[#links + 1] = ARGV[i] end
wfPrefetch(links)
for i = 3, #ARGV, 6 do
  local res, alt, msg = ARGV[i + 4], ARGV[i + 5], ARGV[i + 3]
  local a = ARGV[i + 2]
  if a == '' then a = nil end
  wfTaskEnded(ARGV[i], ARGV[i + 1], res, alt, msg, a)
end
wfFlush()
return redis.call('HLEN', K_WFOUTBOX)
