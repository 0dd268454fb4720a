-- Writes one batch's detector windows, atomically (see RedisState in
-- state_redis.go: the caller has read the windows and counted the small ones).
-- KEYS: 1 the index of tracked keys (zset: key -> expiry, Unix ms), 2 the
-- hash of small windows, 3 the version counter, 4 the lock the caller took
-- for its read, then the sorted-set windows to count, then the windows that
-- become sorted sets. All share one hash tag.
-- ARGV, in order:
--   the version the caller read ("" for none), now, maxKeys, the number of
--   batch keys the index did not hold, the cleanup's limit, the TTL the small
--   windows' hash must have at least (ms, 0: none), the numbers of sorted-set
--   and of promoted keys (in KEYS), the most members an alert's evidence
--   lists, the caller's lock token;
--   counted lists (a count, then that many values):
--     the batch keys the index held (never dropped by the cap);
--     of those, the ones already expired (new again once the cleanup took them);
--     small windows to write: key, window, ...;
--   per promoted key: TTL (ms), 2n, then n pairs score, member;
--   counted: index updates: expiry, key, ...;
--   the number of rules, then per rule: threshold, window, trim (exclusive
--   lower bound of the members kept); then the MessagePack body of the
--   sorted-set ops ("" when none): per key its rule's number, its op count
--   and its TTL when its housekeeping is due ("" otherwise), then per op, in
--   event-time order: member, at, at − window, at + window.
-- Returns {0} when the version is not the one read (another worker wrote:
-- the caller reads and counts again); else {1, evicted, r1, r2, ..., then
-- per sorted-set key with evidence: position of its op (1-based among the
-- ri), first, last, n, n members}: ri is 0 when the op was not added (already
-- counted), else its count; the evidence is the window of the key's last
-- detection as it is at the end of the batch.
local call = redis.call
local index, small, version, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- The lock is released whatever happens: the caller is done with it.
if call('GET', lock) == ARGV[10] then call('DEL', lock) end
if (call('GET', version) or '') ~= ARGV[1] then return {0} end

local now = ARGV[2]
local maxKeys = tonumber(ARGV[3])
local fresh = tonumber(ARGV[4])
local limit = ARGV[5]
local smallTtl = tonumber(ARGV[6])
local nSorted, nPromoted = tonumber(ARGV[7]), tonumber(ARGV[8])
local maxEvidenceS = ARGV[9]
local maxEvidence = tonumber(maxEvidenceS)
local CHUNK = 1000 -- elements per variadic call (unpack has a limit)
local p = 11

-- The next counted list of ARGV, as its first and last positions.
local function list()
  local n = tonumber(ARGV[p])
  local from = p + 1
  p = from + n
  return from, p - 1
end

-- cmd key ARGV[from..to], in chunks of an even number of elements.
local function each(cmd, key, from, to)
  for c = from, to, CHUNK do
    call(cmd, key, unpack(ARGV, c, math.min(c + CHUNK - 1, to)))
  end
end

-- Forgets keys: their sorted sets, their small windows and their index entries.
local function forget(keys)
  for c = 1, #keys, CHUNK do
    local last = math.min(c + CHUNK - 1, #keys)
    call('DEL', unpack(keys, c, last))
    call('HDEL', small, unpack(keys, c, last))
    call('ZREM', index, unpack(keys, c, last))
  end
end

-- Keys past their expiry. A small window has no TTL of its own: this is what
-- ends it.
forget(call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', '0', limit))

local trackedFrom, trackedTo = list()
local expiredFrom, expiredTo = list()
for c = expiredFrom, expiredTo, CHUNK do
  local scores = call('ZMSCORE', index, unpack(ARGV, c, math.min(c + CHUNK - 1, expiredTo)))
  for j = 1, #scores do
    if not scores[j] then fresh = fresh + 1 end
  end
end

-- The cap: make room for the batch's new keys before anything is written,
-- dropping the keys that expire soonest, never one of the batch's.
local evicted = 0
if fresh > 0 then
  local tracked = call('ZCARD', index)
  local drop = math.min(tracked + fresh - maxKeys, tracked)
  if drop > 0 then
    local inBatch = {}
    for j = trackedFrom, trackedTo do inBatch[ARGV[j]] = true end
    local cand = call('ZRANGE', index, '0', tostring(drop + (trackedTo - trackedFrom + 1) - 1))
    local victims = {}
    for _, key in ipairs(cand) do
      if #victims == drop then break end
      if not inBatch[key] then victims[#victims + 1] = key end
    end
    forget(victims)
    evicted = #victims
  end
end

local hsetFrom, hsetTo = list()
each('HSET', small, hsetFrom, hsetTo)
-- The hash lives as long as its longest-lived window, so it does not outlive
-- the workers by more than that if they all stop.
if hsetTo >= hsetFrom and smallTtl > 0 and call('PTTL', small) < smallTtl then
  call('PEXPIRE', small, smallTtl)
end

for j = 1, nPromoted do
  local key = KEYS[4 + nSorted + j]
  local ttl = ARGV[p]
  local n = tonumber(ARGV[p + 1])
  p = p + 2
  call('DEL', key) -- whatever an expired set of that name still holds
  each('ZADD', key, p, p + n - 1)
  p = p + n
  call('PEXPIRE', key, ttl)
  call('HDEL', small, key)
end

local indexFrom, indexTo = list()

local rules = {}
for r = 1, tonumber(ARGV[p]) do
  rules[r] = {th = tonumber(ARGV[p + 1 + 3 * (r - 1)]), window = tonumber(ARGV[p + 2 + 3 * (r - 1)]),
    trim = ARGV[p + 3 + 3 * (r - 1)]}
end
p = p + 1 + 3 * #rules

local out = {1, evicted}
local evidence = {}
if nSorted > 0 then
  local B = cmsgpack.unpack(ARGV[p])
  local q = 1
  for k = 1, nSorted do
    local key = KEYS[4 + k]
    local rule = rules[B[q]]
    local nops, ttl = B[q + 1], B[q + 2]
    q = q + 3
    local th, window = rule.th, rule.window
    local lastAt, lastLo, lastHi
    for _ = 1, nops do
      local member, at, lo, hi = B[q], B[q + 1], B[q + 2], B[q + 3]
      q = q + 4
      local count = 0
      if call('ZADD', key, 'NX', at, member) == 1 then
        -- Most events are far from any burst: one count around the event
        -- settles them (below the threshold, count is that bound, as
        -- MemoryState gives it).
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
              -- window that starts at a member and still contains the event.
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
        if count >= th then lastAt, lastLo, lastHi = #out - 1, clo, chi end
      end
      out[#out + 1] = count
    end

    if lastAt then
      local lo, hi = lastLo, lastHi
      if type(lo) == 'number' then lo = string.format('%d', lo) end
      if type(hi) == 'number' then hi = string.format('%d', hi) end
      local newest = call('ZREVRANGEBYSCORE', key, hi, lo, 'WITHSCORES', 'LIMIT', '0', maxEvidenceS)
      local first = newest[#newest]
      if #newest >= 2 * maxEvidence then -- the window holds more: find its oldest
        first = call('ZRANGEBYSCORE', key, lo, hi, 'WITHSCORES', 'LIMIT', '0', '1')[2]
      end
      evidence[#evidence + 1] = lastAt
      evidence[#evidence + 1] = first
      evidence[#evidence + 1] = newest[2]
      evidence[#evidence + 1] = #newest / 2
      for j = #newest - 1, 1, -2 do evidence[#evidence + 1] = newest[j] end
    end

    if ttl ~= '' then
      call('ZREMRANGEBYSCORE', key, '-inf', rule.trim)
      call('PEXPIRE', key, ttl)
    end
  end
end

each('ZADD', index, indexFrom, indexTo)
call('INCR', version)

for j = 1, #evidence do out[#out + 1] = evidence[j] end
return out
