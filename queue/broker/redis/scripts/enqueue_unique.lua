--! keys: msg locks tasklocks meta pending notify scheduled
-- EnqueueUnique: ARGV id, msg, meta, score, lockKey, nowMs, lockUntilMs.
-- Stores the task and takes the lock in one step. Reply: 0 stored, 1 ID
-- conflict, 2 lock held by another task.
local id, key, nowMs = ARGV[1], ARGV[5], tonumber(ARGV[6])
if redis.call('HEXISTS', K_MSG, id) == 1 then return 1 end
local v = redis.call('HGET', K_LOCKS, key)
if v and tonumber(string.match(v, ',(%d+)$')) > nowMs then return 2 end
redis.call('HSET', K_LOCKS, key, id .. ',' .. ARGV[7])
redis.call('HSET', K_TASKLOCKS, id, key)
store(id, ARGV[2], ARGV[3], ARGV[4])
return 0
