-- Gives up a claim: the lease becomes claimable at max(its due time, retry time).
-- KEYS: 1 lease hash, 2 due zset, 3 claims hash
-- ARGV: 1 id, 2 retry ms
-- Reply: 'ok' | 'notfound'
local due = redis.call('HGET', KEYS[1], 'due_ms')
if not due then
  return 'notfound'
end
redis.call('HDEL', KEYS[3], ARGV[1])
local score = due
if tonumber(ARGV[2]) > tonumber(due) then
  score = ARGV[2]
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
return 'ok'
