-- Compare-and-set of an active lease on its revision, then in the same step: drops it
-- from the active set (record, due set, claim, indexes), stores it in history until
-- its end time + the retention (by the server's clock: a time already past deletes it
-- at once), indexes it by end time, adds it to its owner's usage totals, and prunes
-- history index entries that ended before the server's now - retention, and adds
-- its statistics counters to the day totals hash of its creation day and its share
-- counters to the hash of each span holding that day. Its size
-- leaves the host's totals, and its owner's spend of its creation day counts its final
-- charge instead of the one it had while active.
-- (lib/admission.lua comes first: negated.)
-- KEYS: 1 lease hash, 2 due zset, 3 claims hash, 4 active index, 5 history record,
--       6 history index, 7 owner's history index, 8 owner's usage hash,
--       9 host totals hash, 10 owner's spend hash, 11 day totals hash of its
--       creation day, 12.. share hashes of the spans holding that day
-- ARGV: 1 id, 2 expected revision, 3 record JSON, 4 history index member,
--       5 cost in nano-dollars, 6 history record's end (ms since the epoch),
--       7 retention ms, 8 key base ('{prefix}:'), 9 final charge (nano-dollars),
--       10 creation day (UTC day number), 11 n = how many day totals pairs follow,
--       12 .. 11 + 2n: day totals counter, increment, …; then share field, increment,
--       … (added to every span hash)
-- Reply: 'ok' | 'notfound' | 'conflict'
if redis.replicate_commands then
  -- Redis < 5 needs this before writing after TIME; a no-op on Redis 7.
  redis.replicate_commands()
end
local current = redis.call('HMGET', KEYS[1], 'rev', 'idx', 'owner', 'charge', 'day', 'cpus',
  'memory')
if not current[1] then
  return 'notfound'
end
if current[1] ~= ARGV[2] then
  return 'conflict'
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if current[2] then
  redis.call('ZREM', KEYS[4], current[2])
  if current[3] then
    redis.call('ZREM', ARGV[8] .. 'owner:' .. current[3], current[2])
  end
end
redis.call('SET', KEYS[5], ARGV[3])
redis.call('PEXPIREAT', KEYS[5], ARGV[6])
redis.call('ZADD', KEYS[6], 0, ARGV[4])
redis.call('ZADD', KEYS[7], 0, ARGV[4])
redis.call('HINCRBY', KEYS[8], 'count', 1)
redis.call('HINCRBY', KEYS[8], 'cost', ARGV[5])

-- Weights: its size out of the host's totals, its final charge in place of the one it
-- had (a record from before weights were kept has none to take out).
if current[6] then
  redis.call('HINCRBY', KEYS[9], 'nano_cpus', negated(current[6]))
end
if current[7] then
  redis.call('HINCRBY', KEYS[9], 'memory_mb', negated(current[7]))
end
if current[4] and current[5] and current[3] then
  redis.call('HINCRBY', ARGV[8] .. 'spend:' .. current[3], current[5], negated(current[4]))
end
redis.call('HINCRBY', KEYS[10], ARGV[10], ARGV[9])
local shares_from = 12 + 2 * tonumber(ARGV[11])
for i = 12, shares_from - 2, 2 do
  redis.call('HINCRBY', KEYS[11], ARGV[i], ARGV[i + 1])
end
for k = 12, #KEYS do
  for i = shares_from, #ARGV - 1, 2 do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
  end
end

-- Index members start with 'p' and 25 digits of nanoseconds since the epoch ('n' for
-- times before it); the same pruning as page.lua's.
local t = redis.call('TIME')
local cutoff_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[7])
if cutoff_ms > 0 then
  local digits = string.format('%.0f', cutoff_ms) .. '000000'
  local bound = '(p' .. string.rep('0', 25 - #digits) .. digits
  redis.call('ZREMRANGEBYLEX', KEYS[6], '-', bound)
  redis.call('ZREMRANGEBYLEX', KEYS[7], '-', bound)
end
return 'ok'
