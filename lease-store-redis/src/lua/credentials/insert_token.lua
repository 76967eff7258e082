-- Stores a new personal token unless its hash or id is taken or its owner already
-- holds `limit` tokens that have not expired by its creation (counted to the
-- millisecond: a token expiring within the creation's millisecond still counts).
-- KEYS: 1 token hash, 2 token ids hash, 3 owner's tokens zset, 4 token expiry zset
-- ARGV: 1 id, 2 sha, 3 record JSON, 4 owner, 5 expiry (ms rounded up, or '+inf'),
--       6 creation (ms, rounded down), 7 limit
-- Reply: 'ok' | 'exists' | 'limit'
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 'exists'
end
if redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[6], '+inf') >= tonumber(ARGV[7]) then
  return 'limit'
end
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'id', ARGV[1], 'owner', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
if ARGV[5] ~= '+inf' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
end
return 'ok'
