-- Moves one statistics hash of the layout before the split ({p}:stats:<day>: every
-- counter per owner and offering) into the day totals hash of its day and the share
-- hashes of the spans holding it, and deletes it: one step, so two stores upgrading
-- at once move it once (the second finds it gone). Values are added with HINCRBY
-- from their stored text, never through Lua numbers, so they stay exact.
-- KEYS: 1 old hash, 2 day totals hash, 3.. share hashes of the spans holding the day
-- ARGV: the share counter names
-- Reply: how many fields were moved (0: already gone)
local fields = redis.call('HGETALL', KEYS[1])
local share = {}
for _, name in ipairs(ARGV) do
  share[name] = true
end
for i = 1, #fields - 1, 2 do
  local field, value = fields[i], fields[i + 1]
  local name = string.match(field, '\031([^\031]*)$')
  if not name then
    return redis.error_reply('not a statistics field: ' .. field)
  end
  redis.call('HINCRBY', KEYS[2], name, value)
  if share[name] then
    for k = 3, #KEYS do
      redis.call('HINCRBY', KEYS[k], field, value)
    end
  end
end
redis.call('DEL', KEYS[1])
return #fields / 2
