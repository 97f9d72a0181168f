-- Decides every check of one rate-limit call in one atomic step: either every check passes and
-- every cost is counted, or nothing is written. The arithmetic is keywarden-core's
-- ratelimit/window.rs, so Redis and the in-process limiter give the same numbers.
--
-- KEYS[k]       the state of one distinct (counter, duration) of the call, a hash:
--               s = window seq, c = count of window s, p = count of window s - 1
-- ARGV[1]       "" to take "now" from Redis's clock (production); Unix ms (tests only)
-- ARGV[1 + k]   the duration in ms of KEYS[k], for k = 1 .. #KEYS
-- then, for each check in order, 3 values: the index of its key, its limit, its cost
--
-- Returns { passed, admitted of each check, then seq and effective count of each key }, where
-- the effective count is the one after the call if it passed, before it if it did not.
--
-- Lua numbers are doubles. Every value here is an integer below 2^53, which doubles hold
-- exactly: the caller caps limits and costs at 2^52, so counts (only ever raised to at most a
-- limit) stay at or below 2^52; now is about 2^41 ms; durations are below 2^32. The two
-- divisions are done by floordiv and weigh so that they are exact too. Numbers go back to
-- Redis as decimal strings written here, never through Redis's own number formatting, which
-- may choose an exponent form.

local TWO_52 = 4503599627370496

-- floor(a / b) for integers 0 <= a and 0 < b with a + 2b < 2^53. The quotient a / b is
-- rounded before the floor, so the floor can be one too high (or, in principle, too low)
-- when the true quotient lies just below an integer; the products q * b are exact, so
-- checking them corrects it.
local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

-- floor(p * o / d) for 0 <= p <= 2^52 and 0 <= o <= d < 2^32, the weight of the previous
-- window. Small products are exact as they are; a larger one is split so that no
-- intermediate value reaches 2^53:
--   p = whole * d + rest                      (rest < d)
--   p * o / d = whole * o + rest * o / d
--   o = high * 2^16 + low                     (rest * high < 2^48, rest * low < 2^48)
--   rest * high = q1 * d + r1                 (r1 < d)
--   rest * o / d = q1 * 2^16 + (r1 * 2^16 + rest * low) / d
local function weigh(p, o, d)
  local product = p * o
  if product < TWO_52 then
    return floordiv(product, d)
  end
  local whole = floordiv(p, d)
  local rest = p - whole * d
  local high = math.floor(o / 65536)
  local low = o - high * 65536
  local t = rest * high
  local q1 = floordiv(t, d)
  local r1 = t - q1 * d
  return whole * o + q1 * 65536 + floordiv(r1 * 65536 + rest * low, d)
end

local function decimal(x)
  return string.format('%.0f', x)
end

local now
-- State must outlive the windows it describes; under a test's clock Redis still expires keys
-- by its own, so there state is kept ten minutes longer than the given clock needs it.
local keep_extra = 0
if ARGV[1] == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + floordiv(tonumber(time[2]), 1000)
else
  now = math.max(tonumber(ARGV[1]), 0)
  keep_extra = 600000
end

local nkeys = #KEYS
local durations, seqs, currents, previouses, weighted, before, added = {}, {}, {}, {}, {}, {}, {}
for k = 1, nkeys do
  local d = tonumber(ARGV[1 + k])
  local seq = floordiv(now, d)
  local elapsed = now - seq * d
  local current, previous = 0, 0
  local stored = redis.call('HMGET', KEYS[k], 's', 'c', 'p')
  if stored[1] then
    local s = tonumber(stored[1])
    if s == seq then
      current = tonumber(stored[2])
      previous = tonumber(stored[3])
    elseif s + 1 == seq then
      previous = tonumber(stored[2])
    elseif s > seq then
      -- The clock stepped back behind the stored window: stay in it and weigh its previous
      -- window in full, as window.rs does, rather than admit what the stored counts forbid.
      seq = s
      elapsed = 0
      current = tonumber(stored[2])
      previous = tonumber(stored[3])
    end
  end
  durations[k] = d
  seqs[k] = seq
  currents[k] = current
  previouses[k] = previous
  weighted[k] = 0
  if previous > 0 then
    weighted[k] = weigh(previous, d - elapsed, d)
  end
  before[k] = current + weighted[k]
  added[k] = 0
end

-- Each check is decided against the stored counts plus what earlier checks of this call on
-- the same key add, so naming one counter twice cannot pass a call the counter forbids.
local nchecks = (#ARGV - 1 - nkeys) / 3
local admitted = {}
local passed = true
for i = 1, nchecks do
  local at = 1 + nkeys + 3 * (i - 1)
  local k = tonumber(ARGV[at + 1])
  local limit = tonumber(ARGV[at + 2])
  local cost = tonumber(ARGV[at + 3])
  -- A limit of 0 blocks every call, also one that costs nothing.
  if limit > 0 and currents[k] + weighted[k] + cost <= limit then
    admitted[i] = 1
  else
    admitted[i] = 0
    passed = false
  end
  currents[k] = currents[k] + cost
  added[k] = added[k] + cost
end

if passed then
  for k = 1, nkeys do
    if added[k] > 0 then
      redis.call('HSET', KEYS[k], 's', decimal(seqs[k]), 'c', decimal(currents[k]),
        'p', decimal(previouses[k]))
      -- Needed until window seq + 1 ends; after that it weighs on no decision.
      local keep = (seqs[k] + 2) * durations[k] - now + keep_extra
      redis.call('PEXPIRE', KEYS[k], decimal(keep))
    end
  end
end

local reply = { passed and 1 or 0 }
for i = 1, nchecks do
  reply[#reply + 1] = admitted[i]
end
for k = 1, nkeys do
  reply[#reply + 1] = seqs[k]
  if passed then
    reply[#reply + 1] = currents[k] + weighted[k]
  else
    reply[#reply + 1] = before[k]
  end
end
return reply
