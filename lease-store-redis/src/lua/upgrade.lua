-- Starts the admission counters on a database written by a version that kept none:
-- gives each active lease its weights and adds them up into the host's totals and the
-- owners' spend per day, finished leases (still in history) included. Done once: the
-- layout version marks it. Refused ('retry') if the active set changed since the
-- caller read it, so that nothing is counted twice or missed.
-- KEYS: 1 layout version, 2 active index, 3 host totals hash
-- ARGV: 1 key base ('{prefix}:'), 2 number of active leases A, 3 number of finished
--       leases F, then A times: id, revision, owner, charge (nano-dollars), creation
--       day, nano-CPUs, MiB; then F times: owner, final charge, creation day
-- Reply: 'done' (now or before) | 'retry'
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'done'
end
local active, finished = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZCARD', KEYS[2]) ~= active then
  return 'retry'
end
local first_finished = 4 + active * 7
for at = 4, first_finished - 1, 7 do
  if redis.call('HGET', ARGV[1] .. 'lease:' .. ARGV[at], 'rev') ~= ARGV[at + 1] then
    return 'retry'
  end
end
for at = 4, first_finished - 1, 7 do
  local lease = ARGV[1] .. 'lease:' .. ARGV[at]
  -- A lease that has its weights is counted already.
  if redis.call('HEXISTS', lease, 'charge') == 0 then
    redis.call('HSET', lease, 'charge', ARGV[at + 3], 'day', ARGV[at + 4],
      'cpus', ARGV[at + 5], 'memory', ARGV[at + 6])
    redis.call('HINCRBY', KEYS[3], 'nano_cpus', ARGV[at + 5])
    redis.call('HINCRBY', KEYS[3], 'memory_mb', ARGV[at + 6])
    redis.call('HINCRBY', ARGV[1] .. 'spend:' .. ARGV[at + 2], ARGV[at + 4], ARGV[at + 3])
  end
end
for at = first_finished, first_finished + finished * 3 - 1, 3 do
  redis.call('HINCRBY', ARGV[1] .. 'spend:' .. ARGV[at], ARGV[at + 2], ARGV[at + 1])
end
redis.call('SET', KEYS[1], '2')
return 'done'
