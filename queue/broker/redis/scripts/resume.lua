--! keys: paused pending notify
-- Resume: unpauses the queue and wakes waiting workers if tasks wait.
redis.call('DEL', K_PAUSED)
local n = redis.call('LLEN', K_PENDING)
if n > 0 then notify(n) end
return 0
