-- The detectors' windows for one batch, atomically (see State in state.go).
-- KEYS[1]: the index of tracked keys (zset: key -> expiry, Unix ms);
-- KEYS[2..]: the keys the ops touch. All share one hash tag.
-- ARGV: now, maxKeys, maxEvidence, then 6 values per op (in event-time order):
--   index into KEYS, member, at, window (0: a once marker), threshold, expireAt.
-- Returns {evicted, r1, r2, ...}, ri = {added, count[, first, last, key...]};
-- the evidence (first, last, keys) only on the last op of a key that reached
-- its threshold, as the batch's detections of one key become one alert.
--
-- Redis calls dominate the cost, so the index is read and written in a few
-- large calls, and a window key's expiry is pushed (and its old members
-- trimmed) only when the batch needs more than the expiry recorded, which is
-- set a quarter of the retention beyond the need: an active key pays for its
-- housekeeping every few minutes, not every batch.
local now = tonumber(ARGV[1])
local maxKeys = tonumber(ARGV[2])
local maxEvidence = tonumber(ARGV[3])
local index = KEYS[1]
local CHUNK = 1000 -- elements per variadic call (unpack has a limit)

-- Lua renders large numbers as %.14g; scores are integers, so format them as such.
local function n(x) return string.format('%d', x) end

-- Keys past their recorded expiry are deleted here too, so a key whose TTL
-- was lost cannot outlive the index.
local expired = redis.call('ZRANGEBYSCORE', index, '-inf', n(now), 'LIMIT', 0, CHUNK)
if #expired > 0 then
  redis.call('DEL', unpack(expired))
  redis.call('ZREM', index, unpack(expired))
end
local tracked = redis.call('ZCARD', index)
local evicted = 0

-- The recorded expiry of every key of the batch, false when untracked.
local recorded = {}
for c = 2, #KEYS, CHUNK do
  local chunk = {}
  for j = c, math.min(c + CHUNK - 1, #KEYS) do chunk[#chunk + 1] = KEYS[j] end
  local scores = redis.call('ZMSCORE', index, unpack(chunk))
  for j = 1, #chunk do recorded[chunk[j]] = scores[j] and tonumber(scores[j]) or false end
end

-- st[key] = {rec = recorded expiry (0: new), need = expiry this batch needs,
-- isNew, empty (a new window key before its first member), window, retention}
local st = {}
local order = {}
local function state(key, window, at, expireAt)
  local s = st[key]
  if s then
    if expireAt > s.need then s.need = expireAt end
    return s
  end
  local rec = recorded[key]
  if rec then
    s = {rec = rec, isNew = false, empty = false}
  else
    while tracked >= maxKeys do
      local victim = redis.call('ZPOPMIN', index)
      if not victim[1] then break end
      redis.call('DEL', victim[1])
      tracked = tracked - 1
      evicted = evicted + 1
    end
    tracked = tracked + 1
    -- Untracked: new, or expired (anything left in it is too old to count).
    s = {rec = 0, isNew = true, empty = window > 0}
  end
  s.need, s.window, s.retention = expireAt, window > 0, expireAt - at
  st[key] = s
  order[#order + 1] = key
  return s
end

local out = {0}
local last = {} -- key -> {out index, lo, hi} of its last op that reached the threshold
local nops = (#ARGV - 3) / 6
for i = 0, nops - 1 do
  local b = 4 + i * 6
  local key = KEYS[tonumber(ARGV[b])]
  local member = ARGV[b + 1]
  local at = tonumber(ARGV[b + 2])
  local window = tonumber(ARGV[b + 3])
  local threshold = tonumber(ARGV[b + 4])
  local expireAt = tonumber(ARGV[b + 5])
  local s = state(key, window, at, expireAt)
  if window == 0 then
    if redis.call('SET', key, member, 'NX', 'PX', n(math.max(expireAt - now, 1))) then
      out[#out + 1] = {1, 1}
    else
      out[#out + 1] = {0, 0}
    end
  elseif s.empty then
    -- First member of an untracked key: nothing else to count (whatever an
    -- expired key still holds is older than any window of a timely event).
    s.empty = false
    redis.call('ZADD', key, n(at), member)
    out[#out + 1] = {1, 1}
    if threshold <= 1 then last[key] = {#out, at - window, at} end
  elseif redis.call('ZADD', key, 'NX', n(at), member) == 0 then
    out[#out + 1] = {0, 0}
  else
    -- Most events are far from any burst: one count around the event settles
    -- them (below the threshold, count is that bound, not the exact count).
    local total = redis.call('ZCOUNT', key, n(at - window), n(at + window))
    local count, lo, hi = total, at - window, at
    if total >= threshold then
      count = redis.call('ZCOUNT', key, n(at - window), n(at))
    end
    if total >= threshold and count < threshold then
      local right = redis.call('ZCOUNT', key, n(at), n(at + window))
      if right >= threshold then
        count, lo, hi = right, at, at + window
      else
        -- Out of order and neither side alone is enough: try every window
        -- that starts at a member and still contains the event (fewer than
        -- 2*threshold members here).
        local r = redis.call('ZRANGEBYSCORE', key, n(at - window), n(at + window), 'WITHSCORES')
        local sc = {}
        for j = 2, #r, 2 do sc[#sc + 1] = tonumber(r[j]) end
        local j = 1
        for k = 1, #sc do
          if sc[k] > at then break end
          if j < k then j = k end
          while j < #sc and sc[j + 1] <= sc[k] + window do j = j + 1 end
          if j - k + 1 > count then count, lo, hi = j - k + 1, sc[k], sc[k] + window end
        end
      end
    end
    out[#out + 1] = {1, count}
    if count >= threshold then last[key] = {#out, lo, hi} end
  end
end

for key, l in pairs(last) do
  local first = redis.call('ZRANGEBYSCORE', key, n(l[2]), n(l[3]), 'WITHSCORES', 'LIMIT', 0, 1)
  local newest = redis.call('ZREVRANGEBYSCORE', key, n(l[3]), n(l[2]), 'WITHSCORES', 'LIMIT', 0, maxEvidence)
  local res = out[l[1]]
  res[3], res[4] = tonumber(first[2]), tonumber(newest[2])
  for j = #newest - 1, 1, -2 do res[#res + 1] = newest[j] end
end

-- Housekeeping, and the index in a few large calls.
local zadd = {}
for _, key in ipairs(order) do
  local s = st[key]
  if s.window and s.need > s.rec then
    if not s.isNew then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. n(now - s.retention))
    end
    local expiry = s.need + math.floor(s.retention / 4)
    redis.call('PEXPIRE', key, n(math.max(expiry - now, 1)))
    zadd[#zadd + 1] = n(expiry)
    zadd[#zadd + 1] = key
  elseif not s.window and s.isNew then
    zadd[#zadd + 1] = n(s.need) -- the marker's TTL came with SET
    zadd[#zadd + 1] = key
  end
end
for c = 1, #zadd, 2 * CHUNK do
  redis.call('ZADD', index, unpack(zadd, c, math.min(c + 2 * CHUNK - 1, #zadd)))
end

out[1] = evicted
return out
