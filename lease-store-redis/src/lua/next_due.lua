-- The first entry of the due set: its score (ms) and the lease's exact due time (ns),
-- so the caller can report the exact time when no claim pushed the score later.
-- KEYS: 1 due zset
-- ARGV: 1 key base ('{prefix}:')
-- Reply: nil | {score ms (integer), due ns or nil}
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then
  return false
end
local due_ns = redis.call('HGET', ARGV[1] .. 'lease:' .. first[1], 'due_ns')
return {math.floor(tonumber(first[2])), due_ns}
