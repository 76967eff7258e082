-- Deletes at most `limit` sessions and `limit` personal tokens expired by a time.
-- KEYS: 1 all sessions zset, 2 token expiry zset
-- ARGV: 1 the time (ms, rounded down), 2 base, 3 limit
-- Reply: {sessions deleted, tokens deleted}
local limit = tonumber(ARGV[3])
local sessions = purge_sessions(ARGV[2], ARGV[1], limit)
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  drop_token(ARGV[2], id)
end
return {sessions, #ids}
