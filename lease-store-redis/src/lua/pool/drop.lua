-- Deletes a warm-pool slot if it is in the given state, with its set entries.
-- KEYS: 1 slot hash, 2 all slots set; ARGV: 1 slot id, 2 state, 3 key base
-- Reply: 1 dropped | 0 not in that state (or gone)
local slot = redis.call('HMGET', KEYS[1], 'state', 'offering')
if slot[1] ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', ARGV[3] .. 'pool:in:' .. slot[2], ARGV[1])
redis.call('ZREM', ARGV[3] .. 'pool:ready:' .. slot[2], ARGV[1])
return 1
