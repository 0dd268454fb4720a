-- The detectors' windows for one batch, atomically (see State in state.go).
-- KEYS[1]: the index of tracked keys (zset: key -> expiry, Unix ms);
-- KEYS[2..]: the batch's keys, one per group of ops. All share one hash tag.
-- ARGV: now, maxKeys, maxEvidence, the number of rules, then per rule
--   threshold (0: a once marker), window, slack (how much later than it needs
--   a key expires), trim (exclusive lower bound of the members kept);
-- then, as one MessagePack array (the body), per key (in the order of KEYS):
--   its rule's number, its op count, its expiry (index score) and the TTL to
--   give it (ms, from now); then per op, in event-time order: member, at,
--   at − window, at + window (a once key sends its first op's member only:
--   later ones cannot be first). Numbers that commands take are decimal
--   strings; the two counts are integers.
-- Returns {evicted, r1, r2, ..., then per key with evidence: position of the
-- op it belongs to (1-based among the ri), first, last, n, n members}; ri is
-- 0 when the op was not added (already counted, or the marker already set),
-- else its count. The evidence (the window of the last op of a key that
-- reached its threshold, as it is at the end of the batch) goes with that op,
-- as the batch's detections of one key become one alert.
--
-- What costs here is not Redis's work but the script's: every redis.call,
-- every string made (ARGV included) and every number formatted or parsed. So
-- the caller sends every number a command needs as a ready-made decimal
-- string (Lua would print a large number as %.14g, and string.format is slow),
-- the ops travel as one MessagePack string (one argument for Redis to parse
-- instead of several per event), ops come grouped by key (no per-op lookups
-- or tables), a result is one integer, and numbers are parsed only where the
-- script must compare them.
local call = redis.call
local index = KEYS[1]
local now = ARGV[1]
local maxKeys = tonumber(ARGV[2])
local maxEvidenceS = ARGV[3]
local maxEvidence = tonumber(maxEvidenceS)
local CHUNK = 1000 -- elements per variadic call (unpack has a limit)

local rules = {}
local p = 5
for r = 1, tonumber(ARGV[4]) do
  rules[r] = {th = tonumber(ARGV[p]), window = tonumber(ARGV[p + 1]),
    slack = tonumber(ARGV[p + 2]), trim = ARGV[p + 3]}
  p = p + 4
end
local B = cmsgpack.unpack(ARGV[p])
p = 1 -- from here on, the position in B

-- Keys past their recorded expiry are deleted here too, so a key whose TTL
-- was lost cannot outlive the index.
local expired = call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', '0', CHUNK)
if #expired > 0 then
  call('DEL', unpack(expired))
  call('ZREM', index, unpack(expired))
end

-- The recorded expiry of every key of the batch (a string), false when untracked.
local nkeys = #KEYS
local recorded = {}
for c = 2, nkeys, CHUNK do
  local scores = call('ZMSCORE', index, unpack(KEYS, c, math.min(c + CHUNK - 1, nkeys)))
  for j = 1, #scores do recorded[c + j - 1] = scores[j] end
end

-- The cap: make room for the batch's new keys before any op, dropping the
-- keys that expire soonest. Keys of this batch are never dropped: they are
-- the ones in use, and their recorded expiry is about to move.
local evicted = 0
local fresh = 0
for k = 2, nkeys do
  if not recorded[k] then fresh = fresh + 1 end
end
if fresh > 0 then
  local tracked = call('ZCARD', index)
  local drop = math.min(tracked + fresh - maxKeys, tracked)
  if drop > 0 then
    local inBatch = {}
    for k = 2, nkeys do
      if recorded[k] then inBatch[KEYS[k]] = true end
    end
    local cand = call('ZRANGE', index, '0', tostring(drop + (nkeys - 1 - fresh) - 1))
    local victims = {}
    for _, key in ipairs(cand) do
      if #victims == drop then break end
      if not inBatch[key] then victims[#victims + 1] = key end
    end
    for c = 1, #victims, CHUNK do
      local last = math.min(c + CHUNK - 1, #victims)
      call('ZREM', index, unpack(victims, c, last))
      call('DEL', unpack(victims, c, last))
    end
    evicted = #victims
  end
end

local function str(x)
  if type(x) == 'number' then return string.format('%d', x) end
  return x
end

local out = {evicted}
local evidence = {}
local zadd = {} -- index updates: expiry, key, ...
for k = 2, nkeys do
  local key = KEYS[k]
  local rule = rules[B[p]]
  local nops = B[p + 1]
  local expiry, ttl = B[p + 2], B[p + 3]
  p = p + 4
  local rec = recorded[k]
  local th = rule.th
  if th == 0 then
    out[#out + 1] = call('SET', key, B[p], 'NX', 'PX', ttl) and 1 or 0
    p = p + 1
    if not rec then
      zadd[#zadd + 1] = expiry -- the marker's TTL came with SET
      zadd[#zadd + 1] = key
    end
  else
    local window = rule.window
    -- Untracked: new, or expired (anything left in it is too old to count).
    local empty = not rec
    local lastAt, lastLo, lastHi
    for _ = 1, nops do
      local member, at, lo, hi = B[p], B[p + 1], B[p + 2], B[p + 3]
      p = p + 4
      local count = 0
      if empty then
        -- First member of an untracked key: nothing else to count (whatever an
        -- expired key still holds is older than any window of a timely event).
        empty = false
        call('ZADD', key, at, member)
        count = 1
        if th <= 1 then lastAt, lastLo, lastHi = #out + 1, lo, at end
      elseif call('ZADD', key, 'NX', at, member) == 1 then
        -- Most events are far from any burst: one count around the event
        -- settles them (below the threshold, count is that bound, not the
        -- exact count).
        local total = call('ZCOUNT', key, lo, hi)
        local clo, chi = lo, at
        count = total
        if total >= th then
          count = call('ZCOUNT', key, lo, at)
          if count < th then
            local right = call('ZCOUNT', key, at, hi)
            if right >= th then
              count, clo, chi = right, at, hi
            else
              -- Out of order and neither side alone is enough: try every
              -- window that starts at a member and still contains the event
              -- (fewer than 2*threshold members here).
              local r = call('ZRANGEBYSCORE', key, lo, hi, 'WITHSCORES')
              local atN = tonumber(at)
              local sc = {}
              for j = 2, #r, 2 do sc[#sc + 1] = tonumber(r[j]) end
              local j = 1
              for s = 1, #sc do
                if sc[s] > atN then break end
                if j < s then j = s end
                while j < #sc and sc[j + 1] <= sc[s] + window do j = j + 1 end
                if j - s + 1 > count then count, clo, chi = j - s + 1, sc[s], sc[s] + window end
              end
            end
          end
        end
        if count >= th then lastAt, lastLo, lastHi = #out + 1, clo, chi end
      end
      out[#out + 1] = count
    end

    -- The key's ops are all done: its last detection's window is final.
    if lastAt then
      local lo, hi = str(lastLo), str(lastHi)
      local newest = call('ZREVRANGEBYSCORE', key, hi, lo, 'WITHSCORES', 'LIMIT', '0', maxEvidenceS)
      local first = newest[#newest]
      if #newest >= 2 * maxEvidence then -- the window holds more: find its oldest
        first = call('ZRANGEBYSCORE', key, lo, hi, 'WITHSCORES', 'LIMIT', '0', '1')[2]
      end
      evidence[#evidence + 1] = lastAt - 1
      evidence[#evidence + 1] = first
      evidence[#evidence + 1] = newest[2]
      evidence[#evidence + 1] = #newest / 2
      for j = #newest - 1, 1, -2 do evidence[#evidence + 1] = newest[j] end
    end

    -- Housekeeping only when the batch needs more than the recorded expiry,
    -- which is set a slack (a quarter of the retention) beyond the need: an
    -- active key pays for it every few minutes, not every batch.
    if not rec or tonumber(expiry) - rule.slack > tonumber(rec) then
      if rec then call('ZREMRANGEBYSCORE', key, '-inf', rule.trim) end
      call('PEXPIRE', key, ttl)
      zadd[#zadd + 1] = expiry
      zadd[#zadd + 1] = key
    end
  end
end

for c = 1, #zadd, 2 * CHUNK do
  call('ZADD', index, unpack(zadd, c, math.min(c + 2 * CHUNK - 1, #zadd)))
end

for j = 1, #evidence do out[#out + 1] = evidence[j] end
return out
