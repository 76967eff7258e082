-- Shared by the scripts that keep the admission counters (prepended to insert.lua,
-- update.lua and finish.lua).
--
-- Lua numbers are doubles, exact only up to 2^53; nano-dollars and nano-CPUs go past
-- that. So a 64-bit integer, which arrives as decimal text, is split into {hi, lo}
-- with value = hi * 10^9 + lo and 0 <= lo < 10^9: both parts stay far below 2^53,
-- and sums and comparisons of a few such numbers are exact.
local BILLION = 1000000000

-- The decimal text of a 64-bit integer (nil or false: 0) as {hi, lo}.
local function int(text)
  if not text or text == '' then
    return {0, 0}
  end
  local negative = string.sub(text, 1, 1) == '-'
  local digits = text
  if negative then
    digits = string.sub(text, 2)
  end
  local hi = tonumber(string.sub(digits, 1, -10)) or 0
  local lo = tonumber(string.sub(digits, -9)) or 0
  if negative then
    hi, lo = -hi, -lo
    if lo < 0 then
      lo = lo + BILLION
      hi = hi - 1
    end
  end
  return {hi, lo}
end

local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= BILLION then
    lo = lo - BILLION
    hi = hi + 1
  end
  return {hi, lo}
end

local function sub(a, b)
  local hi, lo = a[1] - b[1], a[2] - b[2]
  if lo < 0 then
    lo = lo + BILLION
    hi = hi - 1
  end
  return {hi, lo}
end

local function greater(a, b)
  return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2])
end

-- Back to decimal text.
local function text(a)
  local hi, lo = a[1], a[2]
  local sign = ''
  if hi < 0 then
    sign = '-'
    if lo > 0 then
      hi, lo = -hi - 1, BILLION - lo
    else
      hi = -hi
    end
  end
  if hi == 0 then
    return sign .. string.format('%d', lo)
  end
  return sign .. string.format('%d%09d', hi, lo)
end

-- The decimal text of -value, for HINCRBY (which takes no '-0' and no '--5').
local function negated(value)
  if value == '0' then
    return '0'
  end
  if string.sub(value, 1, 1) == '-' then
    return string.sub(value, 2)
  end
  return '-' .. value
end

-- Σ of an owner's spend hash (field: UTC day number, value: nano-dollars) over the
-- days from first_day on.
local function spent_since(key, first_day)
  local total = {0, 0}
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    if tonumber(fields[i]) >= first_day then
      total = add(total, int(fields[i + 1]))
    end
  end
  return total
end
