-- Takes back what a counted call added, from the window each check was counted in, if the
-- state still tracks that window (as its current or its previous one); never below zero.
-- Like ratelimit/window.rs's take_back. The key's expiry is left alone: a refund does not
-- make state live longer.
--
-- KEYS[k]   the state of one distinct (counter, duration), as limit.lua writes it
-- ARGV      for each check, 3 values: the index of its key, the window it was counted in,
--           its cost
--
-- Windows are below 2^53 and costs capped at 2^52 by the caller, so the doubles are exact.

for at = 0, #ARGV - 3, 3 do
  local key = KEYS[tonumber(ARGV[at + 1])]
  local window = tonumber(ARGV[at + 2])
  local cost = tonumber(ARGV[at + 3])
  local stored = redis.call('HMGET', key, 's', 'c', 'p')
  if stored[1] then
    local s = tonumber(stored[1])
    local field, count
    if window == s then
      field, count = 'c', tonumber(stored[2])
    elseif window + 1 == s then
      field, count = 'p', tonumber(stored[3])
    end
    if field then
      redis.call('HSET', key, field, string.format('%.0f', math.max(count - cost, 0)))
    end
  end
end
return 0
