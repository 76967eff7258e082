-- Stores a new browser session unless its hash is taken, after deleting up to 100
-- sessions expired by its creation; the record expires (PEXPIREAT) with the session,
-- and its owner's index with the owner's last session.
-- KEYS: 1 session hash, 2 owner's sessions zset, 3 all sessions zset
-- ARGV: 1 sha, 2 record JSON, 3 owner, 4 expiry (ms, rounded up), 5 creation (ms,
--       rounded down), 6 base
-- Reply: 'ok' | 'exists'
purge_sessions(ARGV[6], ARGV[5], 100)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'owner', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[2], last[2])
end
return 'ok'
