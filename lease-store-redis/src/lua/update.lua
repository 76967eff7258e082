-- Compare-and-set of an active lease on its revision; re-scores it in the due set as
-- max(new due time, current claim deadline) and moves its index entries if owner or
-- creation time changed.
-- KEYS: 1 lease hash, 2 due zset, 3 claims hash, 4 active index, 5 (new) owner index
-- ARGV: 1 id, 2 expected revision, 3..8 the lease hash's fields: record JSON, new
--       revision, due ms, due ns, index member, owner; 9 key base ('{prefix}:')
-- Reply: 'ok' | 'notfound' | 'conflict'
local current = redis.call('HMGET', KEYS[1], 'rev', 'idx', 'owner')
if not current[1] then
  return 'notfound'
end
if current[1] ~= ARGV[2] then
  return 'conflict'
end
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'rev', ARGV[4], 'due_ms', ARGV[5],
  'due_ns', ARGV[6], 'idx', ARGV[7], 'owner', ARGV[8])
local score = ARGV[5]
local claim = redis.call('HGET', KEYS[3], ARGV[1])
if claim and tonumber(claim) > tonumber(score) then
  score = claim
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
if current[2] ~= ARGV[7] or current[3] ~= ARGV[8] then
  if current[2] then
    redis.call('ZREM', KEYS[4], current[2])
    if current[3] then
      redis.call('ZREM', ARGV[9] .. 'owner:' .. current[3], current[2])
    end
  end
  redis.call('ZADD', KEYS[4], 0, ARGV[7])
  redis.call('ZADD', KEYS[5], 0, ARGV[7])
end
return 'ok'
