-- Marks a filling warm-pool slot ready with its container's id and adds it to its
-- offering's ready set (scored by creation time in ms; ties by id).
-- KEYS: 1 slot hash; ARGV: 1 slot id, 2 container id, 3 key base ('{prefix}:'),
--       4 creation time (ms)
-- Reply: 1 done | 0 not filling (or gone)
local slot = redis.call('HMGET', KEYS[1], 'state', 'offering')
if slot[1] ~= 'filling' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'ready', 'container_id', ARGV[2])
redis.call('ZADD', ARGV[3] .. 'pool:ready:' .. slot[2], ARGV[4], ARGV[1])
return 1
