-- Stores a new active lease and indexes it, unless its id is taken (active or in
-- history) or, counting it, a limit of the admission would be exceeded; adds its size
-- to the host's totals and its charge to its owner's spend of its creation day.
-- (lib/admission.lua comes first: int, add, greater, text, spent_since.)
-- KEYS: 1 lease hash, 2 due zset, 3 claims hash, 4 active index, 5 owner index,
--       6 history record, 7 host totals hash, 8 owner's spend hash, 9 layout version
-- ARGV: 1 id, 2..7 the lease hash's fields: record JSON, revision, due ms, due ns,
--       index member, owner; 8..11 its weights: charge (nano-dollars), creation day
--       (UTC day number), nano-CPUs, MiB; 12..17 the limits ('' = none): leases per
--       owner, daily spend (nano-dollars; '' too when the lease is not created "today"),
--       first day of "today", leases, nano-CPUs, MiB; 18 the oldest spend day to keep
-- Reply: 'ok' | 'exists' | {'refused', owner's leases, owner's spend today, leases,
--        nano-CPUs, MiB} (the figures before this lease; '0' for a limit not set)
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[6]) == 1 then
  return 'exists'
end

-- Admission, in the order of lease_core::Limit; every figure is gathered (for the
-- refusal's message) only when its limit is set.
local charge, cpus, memory = int(ARGV[8]), int(ARGV[10]), int(ARGV[11])
local owner_leases, spent, leases, used_cpus, used_memory = 0, {0, 0}, 0, {0, 0}, {0, 0}
local refused = false
if ARGV[12] ~= '' then
  owner_leases = redis.call('ZCARD', KEYS[5])
  refused = refused or owner_leases + 1 > tonumber(ARGV[12])
end
if ARGV[13] ~= '' then
  spent = spent_since(KEYS[8], tonumber(ARGV[14]))
  refused = refused or greater(add(spent, charge), int(ARGV[13]))
end
if ARGV[15] ~= '' then
  leases = redis.call('ZCARD', KEYS[4])
  refused = refused or leases + 1 > tonumber(ARGV[15])
end
if ARGV[16] ~= '' or ARGV[17] ~= '' then
  local totals = redis.call('HMGET', KEYS[7], 'nano_cpus', 'memory_mb')
  used_cpus, used_memory = int(totals[1]), int(totals[2])
  if ARGV[16] ~= '' then
    refused = refused or greater(add(used_cpus, cpus), int(ARGV[16]))
  end
  if ARGV[17] ~= '' then
    refused = refused or greater(add(used_memory, memory), int(ARGV[17]))
  end
end
if refused then
  return {'refused', tostring(owner_leases), text(spent), tostring(leases), text(used_cpus),
    text(used_memory)}
end

redis.call('HSET', KEYS[1], 'data', ARGV[2], 'rev', ARGV[3], 'due_ms', ARGV[4],
  'due_ns', ARGV[5], 'idx', ARGV[6], 'owner', ARGV[7],
  'charge', ARGV[8], 'day', ARGV[9], 'cpus', ARGV[10], 'memory', ARGV[11])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[6])
redis.call('ZADD', KEYS[5], 0, ARGV[6])
redis.call('HINCRBY', KEYS[7], 'nano_cpus', ARGV[10])
redis.call('HINCRBY', KEYS[7], 'memory_mb', ARGV[11])
redis.call('HINCRBY', KEYS[8], ARGV[9], ARGV[8])
-- Days long past no longer count toward any limit.
local oldest = tonumber(ARGV[18])
for _, day in ipairs(redis.call('HKEYS', KEYS[8])) do
  if tonumber(day) < oldest then
    redis.call('HDEL', KEYS[8], day)
  end
end
-- The counters above are kept from here on (see upgrade.lua).
redis.call('SET', KEYS[9], '2', 'NX')
return 'ok'
