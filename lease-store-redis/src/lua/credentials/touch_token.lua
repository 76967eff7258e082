-- Records when a personal token was last presented (never re-creates a revoked one).
-- KEYS: 1 token ids hash
-- ARGV: 1 id, 2 time (ns since the epoch), 3 base
-- Reply: 1 if the token exists, else 0
local sha = redis.call('HGET', KEYS[1], ARGV[1])
if not sha then
  return 0
end
local key = ARGV[3] .. 'token:' .. sha
if redis.call('EXISTS', key) == 0 then
  return 0
end
redis.call('HSET', key, 'used', ARGV[2])
return 1
