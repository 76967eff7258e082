-- Compare-and-set of an active lease on its revision; re-scores it in the due set as
-- max(new due time, current claim deadline) and moves its index entries if owner or
-- creation time changed. A rise of its charge is refused when its owner's spend today
-- plus the rise would exceed the daily spend limit; the host's totals and the spend
-- per day follow the lease's new weights.
-- (lib/admission.lua comes first: int, add, sub, greater, text, negated, spent_since.)
-- KEYS: 1 lease hash, 2 due zset, 3 claims hash, 4 active index, 5 (new) owner index,
--       6 host totals hash, 7 (new) owner's spend hash
-- ARGV: 1 id, 2 expected revision, 3..8 the lease hash's fields: record JSON, new
--       revision, due ms, due ns, index member, owner; 9 key base ('{prefix}:');
--       10..13 its weights: charge (nano-dollars), creation day, nano-CPUs, MiB;
--       14 daily spend limit (nano-dollars; '' = none, or the lease is not created
--       "today"), 15 first day of "today"
-- Reply: 'ok' | 'notfound' | 'conflict' | {'refused', owner's spend today, stored record}
local current = redis.call('HMGET', KEYS[1], 'rev', 'idx', 'owner', 'charge', 'day',
  'cpus', 'memory', 'data')
if not current[1] then
  return 'notfound'
end
if current[1] ~= ARGV[2] then
  return 'conflict'
end
local old_owner, old_charge, old_day = current[3], current[4], current[5]

if ARGV[14] ~= '' then
  local rise = sub(int(ARGV[10]), int(old_charge))
  if greater(rise, {0, 0}) then
    local spent = spent_since(KEYS[7], tonumber(ARGV[15]))
    if greater(add(spent, rise), int(ARGV[14])) then
      return {'refused', text(spent), current[8]}
    end
  end
end

redis.call('HSET', KEYS[1], 'data', ARGV[3], 'rev', ARGV[4], 'due_ms', ARGV[5],
  'due_ns', ARGV[6], 'idx', ARGV[7], 'owner', ARGV[8],
  'charge', ARGV[10], 'day', ARGV[11], 'cpus', ARGV[12], 'memory', ARGV[13])
local score = ARGV[5]
local claim = redis.call('HGET', KEYS[3], ARGV[1])
if claim and tonumber(claim) > tonumber(score) then
  score = claim
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
if current[2] ~= ARGV[7] or old_owner ~= ARGV[8] then
  if current[2] then
    redis.call('ZREM', KEYS[4], current[2])
    if old_owner then
      redis.call('ZREM', ARGV[9] .. 'owner:' .. old_owner, current[2])
    end
  end
  redis.call('ZADD', KEYS[4], 0, ARGV[7])
  redis.call('ZADD', KEYS[5], 0, ARGV[7])
end

-- Weights: the old ones out, the new ones in (a record from before weights were kept
-- has none to take out).
if current[6] ~= ARGV[12] then
  redis.call('HINCRBY', KEYS[6], 'nano_cpus', ARGV[12])
  if current[6] then
    redis.call('HINCRBY', KEYS[6], 'nano_cpus', negated(current[6]))
  end
end
if current[7] ~= ARGV[13] then
  redis.call('HINCRBY', KEYS[6], 'memory_mb', ARGV[13])
  if current[7] then
    redis.call('HINCRBY', KEYS[6], 'memory_mb', negated(current[7]))
  end
end
if old_charge ~= ARGV[10] or old_day ~= ARGV[11] or old_owner ~= ARGV[8] then
  redis.call('HINCRBY', KEYS[7], ARGV[11], ARGV[10])
  if old_charge and old_day and old_owner then
    redis.call('HINCRBY', ARGV[9] .. 'spend:' .. old_owner, old_day, negated(old_charge))
  end
end
return 'ok'
