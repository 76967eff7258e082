-- Stores a new active lease and indexes it, unless its id is taken (active or in history).
-- KEYS: 1 lease hash, 2 due zset, 3 claims hash, 4 active index, 5 owner index, 6 history record
-- ARGV: 1 id, 2..7 the lease hash's fields: record JSON, revision, due ms, due ns,
--       index member, owner
-- Reply: 'ok' | 'exists'
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[6]) == 1 then
  return 'exists'
end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'rev', ARGV[3], 'due_ms', ARGV[4],
  'due_ns', ARGV[5], 'idx', ARGV[6], 'owner', ARGV[7])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[6])
redis.call('ZADD', KEYS[5], 0, ARGV[6])
return 'ok'
