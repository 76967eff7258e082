-- Shared by the credential scripts (prepended to each: Redis Lua has no require).
-- `base` is the deployment's `{prefix}:`; every key built from it shares the hash tag.
-- Sessions: `session:<sha>` hash (data, owner), `sessions-of:<owner>` and `sessions`
-- sorted sets of hashes scored by expiry (ms). Tokens: `token:<sha>` hash (data, id,
-- owner, used), `token-ids` hash id -> sha, `tokens-of:<owner>` sorted set of ids
-- scored by expiry (ms, +inf for none), `token-expiry` the same for expiring ones.

-- Deletes session `sha` and its index entries; 1 if its record still existed.
local function drop_session(base, sha)
  local key = base .. 'session:' .. sha
  local owner = redis.call('HGET', key, 'owner')
  local existed = redis.call('DEL', key)
  if owner then
    redis.call('ZREM', base .. 'sessions-of:' .. owner, sha)
  end
  redis.call('ZREM', base .. 'sessions', sha)
  return existed
end

-- Deletes at most `limit` sessions expired by `max_ms` (their record may already have
-- expired in Redis); how many index entries went.
local function purge_sessions(base, max_ms, limit)
  local shas = redis.call('ZRANGEBYSCORE', base .. 'sessions', '-inf', max_ms,
    'LIMIT', 0, limit)
  for _, sha in ipairs(shas) do
    drop_session(base, sha)
  end
  return #shas
end

-- Deletes personal token `id` and its index entries; 1 if it existed.
local function drop_token(base, id)
  redis.call('ZREM', base .. 'token-expiry', id)
  local sha = redis.call('HGET', base .. 'token-ids', id)
  if not sha then
    return 0
  end
  local key = base .. 'token:' .. sha
  local owner = redis.call('HGET', key, 'owner')
  redis.call('DEL', key)
  redis.call('HDEL', base .. 'token-ids', id)
  if owner then
    redis.call('ZREM', base .. 'tokens-of:' .. owner, id)
  end
  return 1
end

