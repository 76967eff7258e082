-- Claims up to ARGV[1] due leases by the Redis server's clock: every lease whose
-- claimable time (max(due time, claim deadline)) has come is re-scored to now + ttl and
-- its claim deadline recorded, so no other caller gets it until then.
-- KEYS: 1 due zset, 2 claims hash
-- ARGV: 1 limit, 2 claim ttl ms, 3 key base ('{prefix}:')
-- Reply: flat list {id, record JSON, id, record JSON, ...}
if redis.replicate_commands then
  -- Redis < 5 needs this before writing after TIME; a no-op on Redis 7.
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = string.format('%.0f', now + tonumber(ARGV[2]))
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now),
  'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local data = redis.call('HGET', ARGV[3] .. 'lease:' .. id, 'data')
  if data then
    redis.call('ZADD', KEYS[1], deadline, id)
    redis.call('HSET', KEYS[2], id, deadline)
    out[#out + 1] = id
    out[#out + 1] = data
  else
    -- A due entry without a record: nothing to reap, drop it.
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
return out
