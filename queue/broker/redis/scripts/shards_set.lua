--! standalone
-- Set a queue's shard record if it is still what the caller read: KEYS[1]
-- the record hash (one key, global to the prefix), ARGV queue, the record
-- read ("" for none), the new record. Reply 1 if set, 0 if the record
-- changed meanwhile.
local key = KEYS[1]
local cur = redis.call('HGET', key, ARGV[1]) or ''
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', key, ARGV[1], ARGV[3])
return 1
