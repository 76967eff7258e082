-- Revokes one owner's personal token; another owner's token is left alone.
-- KEYS: 1 token ids hash
-- ARGV: 1 id, 2 owner, 3 base
-- Reply: 1 if the owner's token existed, else 0
local sha = redis.call('HGET', KEYS[1], ARGV[1])
if not sha then
  return 0
end
if redis.call('HGET', ARGV[3] .. 'token:' .. sha, 'owner') ~= ARGV[2] then
  return 0
end
return drop_token(ARGV[3], ARGV[1])
