-- Decides a batch of rate-limit calls, and applies refunds, in the order they arrived, in one
-- atomic step, as if each had been a script of its own run one after the other at one moment.
-- Each limit call is all-or-nothing: either every check passes and every cost is counted, or
-- the call leaves no trace and the calls after it see the counts as they were. A refund takes
-- back what a counted call added, from the window each check was counted in, if the state
-- still tracks that window (as its current or its previous one); never below zero. The
-- arithmetic is keywarden-core's ratelimit/window.rs (observe, admits, count, take_back), so
-- Redis and the in-process limiter give the same numbers.
--
-- KEYS[k]   the state of one distinct (counter, duration) that some call of the batch names:
--           a string of three little-endian doubles (struct '<ddd'): s = window seq, c = count
--           of window s, p = count of window s - 1
-- ARGV[1]   "" to take "now" from Redis's clock (production); Unix ms (tests only)
-- ARGV[2]   the numbers below, as little-endian doubles one after the other (absent: none):
--           the duration in ms of KEYS[k], for k = 1 .. #KEYS; then each call in turn: its
--           number of checks n for a limit call, -n for a refund, then 3 values per check:
--             limit:  the index of its key, its limit, its cost
--             refund: the index of its key, the window it was counted in, its cost
--
-- Returns { number of calls, then for each check of each limit call: admitted, window seq,
-- effective count }, where the effective count is the one after the call if it passed, before
-- it if it did not; the call passed if every check was admitted. A refund adds nothing to the
-- reply.
--
-- All keys are read with one MGET, and each is written at most once at the end, with one SET
-- that keeps or sets its expiry (see below). Most of the script's time is in the redis.call
-- bridge and in the work per argument, hence one call for all reads, and numbers that arrive
-- and are stored as binary doubles, which struct.unpack turns into Lua numbers in one C call
-- each, where a decimal string costs a tonumber (strtod) per value.
--
-- Lua numbers are doubles. Every stored value is an integer below 2^53, which doubles hold
-- exactly: the caller caps limits and costs at 2^52, and a count is only ever raised by a call
-- that passed, so to at most a limit, 2^52; now is about 2^41 ms; durations are below 2^32;
-- windows are below 2^42. Within a call that fails, a counter named by many checks may sum
-- their costs past 2^53, where sums lose exactness; but such a sum stays above 2^52 and so
-- above every limit, as the exact one would, so no decision changes. The two divisions are
-- done by floordiv and weigh so that they are exact too. Doubles carry every such integer
-- exactly in and out. The one number given to Redis as text, an expiry, is written here as a
-- decimal string, never through Redis's own number formatting, which may choose an exponent
-- form.

local TWO_52 = 4503599627370496
local TWO_31 = 2147483648
-- Locals, not lookups in the global table on every use.
local tonumber, floor, max, format, call = tonumber, math.floor, math.max, string.format, redis.call
local pack, unpack_doubles, unpack, min = struct.pack, struct.unpack, unpack, math.min
local KEYS, ARGV = KEYS, ARGV

-- floor(a / b) for integers 0 <= a and 0 < b with a + 2b < 2^53. The quotient a / b is
-- rounded before the floor, so the floor can be one too high (or, in principle, too low)
-- when the true quotient lies just below an integer; the products q * b are exact, so
-- checking them corrects it.
local function floordiv(a, b)
  local q = floor(a / b)
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
  local high = floor(o / 65536)
  local low = o - high * 65536
  local t = rest * high
  local q1 = floordiv(t, d)
  local r1 = t - q1 * d
  return whole * o + q1 * 65536 + floordiv(r1 * 65536 + rest * low, d)
end

-- '%d' formats a C long, which may have 32 bits; below 2^31 it is exact everywhere, and it
-- is much faster than '%.0f', which only larger numbers need.
local function decimal(x)
  if x < TWO_31 then
    return format('%d', x)
  end
  return format('%.0f', x)
end

local now
-- State must outlive the windows it describes; under a test's clock Redis still expires keys
-- by its own, so there state is kept ten minutes longer than the given clock needs it.
local keep_extra = 0
if ARGV[1] == '' then
  local time = call('TIME')
  now = tonumber(time[1]) * 1000 + floordiv(tonumber(time[2]), 1000)
else
  now = max(tonumber(ARGV[1]), 0)
  keep_extra = 600000
end

local nkeys = #KEYS
local packed = ARGV[2] or ''
if #packed % 8 ~= 0 then
  return redis.error_reply('ERR batch arguments are not whole doubles')
end
local nvals = #packed / 8
-- struct.unpack and unpack return their values on Lua's C stack, which holds about 8 000;
-- calls that reach the server are far smaller than that, but a batch of more (the limiter is
-- a library) is handled in parts of AT_ONCE.
local AT_ONCE = 4096
local V, stored
if nvals <= AT_ONCE and nkeys <= AT_ONCE then
  -- V is followed by the position after the numbers, which struct.unpack adds.
  V = { unpack_doubles('<' .. string.rep('d', nvals), packed) }
  stored = nkeys > 0 and call('MGET', unpack(KEYS)) or {}
else
  -- The values 1 .. total that part(first, last) gives range by range, in one table.
  local function in_parts(total, part)
    local all = {}
    for first = 1, total, AT_ONCE do
      local last = min(first + AT_ONCE - 1, total)
      local values = part(first, last)
      for i = first, last do
        all[i] = values[i - first + 1]
      end
    end
    return all
  end
  V = in_parts(nvals, function(first, last)
    local layout = '<' .. string.rep('d', last - first + 1)
    return { unpack_doubles(layout, packed, 8 * (first - 1) + 1) }
  end)
  stored = in_parts(nkeys, function(first, last)
    return call('MGET', unpack(KEYS, first, last))
  end)
end
-- Each key's stored state as the calls so far leave it (s is false while there is none), and
-- as it was read, to write back only what changed.
local durations, ss, cs, ps, read_s, read_c, read_p = {}, {}, {}, {}, {}, {}, {}
for k = 1, nkeys do
  durations[k] = V[k]
  local state = stored[k]
  if state then
    ss[k], cs[k], ps[k] = unpack_doubles('<ddd', state)
  else
    ss[k], cs[k], ps[k] = false, 0, 0
  end
  read_s[k], read_c[k], read_p[k] = ss[k], cs[k], ps[k]
end

-- Each key's window as seen from now (window.rs's observe), worked out from the stored state
-- when a call first needs it. A limit call that counts on the key keeps it valid (seen from
-- now, the state it stores is this same window); a refund changes the stored state under it,
-- so the window is worked out again.
local seqs, currents, previouses, weighted, seen = {}, {}, {}, {}, {}
local function observe(k)
  local d = durations[k]
  local seq = floordiv(now, d)
  local elapsed = now - seq * d
  local current, previous = 0, 0
  local s = ss[k]
  if s then
    if s == seq then
      current, previous = cs[k], ps[k]
    elseif s + 1 == seq then
      previous = cs[k]
    elseif s > seq then
      -- The clock stepped back behind the stored window: stay in it and weigh its previous
      -- window in full, as window.rs does, rather than admit what the stored counts forbid.
      seq = s
      elapsed = 0
      current, previous = cs[k], ps[k]
    end
  end
  seqs[k], currents[k], previouses[k] = seq, current, previous
  if previous > 0 then
    weighted[k] = weigh(previous, d - elapsed, d)
  else
    weighted[k] = 0
  end
  seen[k] = true
end

local dirty, added = {}, {}
for k = 1, nkeys do
  seen[k], dirty[k], added[k] = false, false, 0
end

-- Scratch space for one call, reused by the next.
local ks, admitted = {}, {}
local reply = { 0 }
local replied = 1
local calls = 0
local at = 1 + nkeys
while at <= nvals do
  local n = V[at]
  local refund = n < 0
  if refund then
    n = -n
  end
  local first = at + 1
  at = first + 3 * n
  calls = calls + 1
  if not refund then
    -- Each check is decided against the counts the earlier calls left plus what earlier
    -- checks of this call on the same key add, so naming one counter twice cannot pass a
    -- call the counter forbids.
    local passed = true
    for i = 1, n do
      local j = first + 3 * (i - 1)
      local k = V[j]
      local limit = V[j + 1]
      local cost = V[j + 2]
      if not seen[k] then
        observe(k)
      end
      ks[i] = k
      -- A limit of 0 blocks every call, also one that costs nothing.
      if limit > 0 and currents[k] + added[k] + weighted[k] + cost <= limit then
        admitted[i] = 1
      else
        admitted[i] = 0
        passed = false
      end
      added[k] = added[k] + cost
    end
    -- Count the call if it passed; either way, leave no trace of it for the next call.
    for i = 1, n do
      local k = ks[i]
      if added[k] > 0 then
        if passed then
          currents[k] = currents[k] + added[k]
          ss[k], cs[k], ps[k] = seqs[k], currents[k], previouses[k]
          dirty[k] = true
        end
        added[k] = 0
      end
    end
    for i = 1, n do
      local k = ks[i]
      reply[replied + 1] = admitted[i]
      reply[replied + 2] = seqs[k]
      reply[replied + 3] = currents[k] + weighted[k]
      replied = replied + 3
    end
  else
    for i = 1, n do
      local j = first + 3 * (i - 1)
      local k = V[j]
      local window = V[j + 1]
      local cost = V[j + 2]
      local s = ss[k]
      if s then
        if window == s then
          cs[k] = max(cs[k] - cost, 0)
          dirty[k], seen[k] = true, false
        elseif window + 1 == s then
          ps[k] = max(ps[k] - cost, 0)
          dirty[k], seen[k] = true, false
        end
      end
    end
  end
end
reply[1] = calls

for k = 1, nkeys do
  if dirty[k] then
    -- A key's expiry depends on its window alone: needed until window s + 1 ends, after
    -- which it weighs on no decision. So it is set when the window moves (or the key is
    -- new); a window counted again, or a refund, which never moves it, keeps the expiry
    -- set for that window (KEEPTTL), so state does not live longer.
    if ss[k] ~= read_s[k] then
      local keep = (ss[k] + 2) * durations[k] - now + keep_extra
      call('SET', KEYS[k], pack('<ddd', ss[k], cs[k], ps[k]), 'PX', decimal(keep))
    elseif cs[k] ~= read_c[k] or ps[k] ~= read_p[k] then
      call('SET', KEYS[k], pack('<ddd', ss[k], cs[k], ps[k]), 'KEEPTTL')
    end
  end
end

return reply
