-- Deletes every session of one owner (sign out everywhere).
-- KEYS: 1 owner's sessions zset
-- ARGV: 1 base
-- Reply: how many sessions existed
local deleted = 0
for _, sha in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  deleted = deleted + drop_session(ARGV[1], sha)
end
redis.call('DEL', KEYS[1])
return deleted
