-- Adds a filling warm-pool slot if its offering has fewer than the target slots
-- filling or ready (the offering's in-pool set), and if the id is new.
-- KEYS: 1 slot hash, 2 all slots set, 3 the offering's in-pool set
-- ARGV: 1 slot id, 2 offering, 3 image, 4 created_at (RFC 3339), 5 target
-- Reply: 1 added | 0 not
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'offering', ARGV[2], 'image', ARGV[3],
  'state', 'filling', 'created_at', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
