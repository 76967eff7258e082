-- Every warm-pool slot, as flat field/value arrays.
-- KEYS: 1 all slots set; ARGV: 1 key base
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', ARGV[1] .. 'pool:slot:' .. id)
  if #fields > 0 then
    table.insert(out, fields)
  end
end
return out
