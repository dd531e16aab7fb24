--! keys: wfoutbox
-- Mover, in a home shard (xslot.go): ARGV (task ID, order) pairs the mover
-- applied. Each is dropped from wfoutbox if it is still that order (a
-- cancel may have replaced a move meanwhile: it stays, for the next pass).
-- Reply: the orders left in the outbox.
for i = 1, #ARGV, 2 do
  if redis.call('HGET', K_WFOUTBOX, ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', K_WFOUTBOX, ARGV[i])
  end
end
return redis.call('HLEN', K_WFOUTBOX)
