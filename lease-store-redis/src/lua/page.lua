-- One chunk of a walk over a lexicographic index (active leases or history) with the
-- record each member names, read in one step.
-- With a retention (history), it first drops index entries that ended before the
-- server's now - retention, and drops members whose record is gone (expired).
-- KEYS: 1 index zset
-- ARGV: 1 'asc' | 'desc', 2 start bound ('-', '+' or '(' member), 3 most members,
--       4 record key start ('{prefix}:lease:' or '{prefix}:history:'),
--       5 hash field of the record ('' for a string record), 6 retention ms ('0': none)
-- Reply: flat list {member, record JSON or nil, member, record JSON or nil, ...}
local retention = tonumber(ARGV[6])
if retention > 0 then
  if redis.replicate_commands then
    -- Redis < 5 needs this before writing after TIME; a no-op on Redis 7.
    redis.replicate_commands()
  end
  -- Members start with 'p' and 25 digits of nanoseconds since the epoch ('n' for
  -- times before it); the same pruning as finish.lua's.
  local t = redis.call('TIME')
  local cutoff_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - retention
  if cutoff_ms > 0 then
    local digits = string.format('%.0f', cutoff_ms) .. '000000'
    local bound = '(p' .. string.rep('0', 25 - #digits) .. digits
    redis.call('ZREMRANGEBYLEX', KEYS[1], '-', bound)
  end
end
local members
if ARGV[1] == 'asc' then
  members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))
else
  members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[2], '-', 'LIMIT', 0, tonumber(ARGV[3]))
end
local out = {}
for _, member in ipairs(members) do
  -- A member is '<time>:<id>'; one without an id names no record.
  local colon = string.find(member, ':', 1, true)
  local record = false
  if colon then
    local key = ARGV[4] .. string.sub(member, colon + 1)
    if ARGV[5] == '' then
      record = redis.call('GET', key)
    else
      record = redis.call('HGET', key, ARGV[5])
    end
  end
  if not record and retention > 0 then
    redis.call('ZREM', KEYS[1], member)
  end
  out[#out + 1] = member
  out[#out + 1] = record
end
return out
