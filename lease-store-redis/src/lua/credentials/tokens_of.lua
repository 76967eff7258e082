-- Every personal token of one owner, in one snapshot (the caller sorts them).
-- KEYS: 1 owner's tokens zset, 2 token ids hash
-- ARGV: 1 base
-- Reply: {{record JSON, last use (ns, or '')}, ...}
local tokens = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local sha = redis.call('HGET', KEYS[2], id)
  if sha then
    local fields = redis.call('HMGET', ARGV[1] .. 'token:' .. sha, 'data', 'used')
    if fields[1] then
      tokens[#tokens + 1] = {fields[1], fields[2] or ''}
    end
  end
end
return tokens
