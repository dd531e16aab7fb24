--! keys: msg meta errors results
-- Get: ARGV ids. Reply: (msg, meta, errors, result) per ID, nils where absent.
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  out[#out + 1] = redis.call('HGET', K_MSG, id)
  out[#out + 1] = redis.call('HGET', K_META, id)
  out[#out + 1] = redis.call('HGET', K_ERRORS, id)
  out[#out + 1] = redis.call('HGET', K_RESULTS, id)
end
return out
