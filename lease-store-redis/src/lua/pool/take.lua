-- The start of the warm-pool take: checks that the chosen slot is still ready on the
-- same container and that the lease's revision is the one read, then marks the slot
-- taken by the lease. update.lua follows in the same script (with no daily spend
-- limit, so it cannot refuse): the lease becomes running on the slot's container in
-- this one atomic step.
-- KEYS (after update.lua's 1..7): 8 slot hash, 9 the offering's ready set,
--       10 the offering's in-pool set
-- ARGV (after update.lua's 1..15): 16 slot id, 17 container id
-- Reply (before update.lua's): 'gone' when the slot is no longer ready
local slot = redis.call('HMGET', KEYS[8], 'state', 'container_id')
if slot[1] ~= 'ready' or slot[2] ~= ARGV[17] then
  return 'gone'
end
local revision = redis.call('HGET', KEYS[1], 'rev')
if not revision then
  return 'notfound'
end
if revision ~= ARGV[2] then
  return 'conflict'
end
redis.call('HSET', KEYS[8], 'state', 'taken', 'lease_id', ARGV[1])
redis.call('ZREM', KEYS[9], ARGV[16])
redis.call('SREM', KEYS[10], ARGV[16])
