-- fetch: move up to N jobs to active (our batch form of "moveToActive").
-- ARGV: 1 base, 2 now (ms), 3 lock token, 4 lock duration (ms), 5 max jobs,
--       6 worker name for "pb" ("" = none).
-- Returns {nextDelayedDue, {id, ...}}; nextDelayedDue is 0 when jobs were
-- returned or nothing is delayed.
--
-- One call with N leaves Redis as N calls with 1 would (state read, promotion,
-- take, lock, events, marker): see takeMany and the comments below.
-- Numbers written back to Redis stay the caller's strings: Lua would format
-- each one with sprintf, which costs more than the command that stores it.
--
-- The job hashes are not returned: the caller reads them with one pipelined
-- HGETALL per job right after. Every reply a script receives becomes Lua
-- strings and every value it returns is converted back, which for a hash
-- holding ~1 KB of event data cost Redis more than the HGETALL itself.
local nowS = ARGV[2]
local now = tonumber(nowS)
local token = ARGV[3]
local lockMs = ARGV[4]
local n = tonumber(ARGV[5])
local worker = ARGV[6]

local maxEv = maxEvents()

-- Takes up to `need` ids: wait first (consumer end = right), then the lowest
-- priority scores. Legacy v4 marker ids ("0:...") and ids whose hash is gone
-- are dropped. Returns the ids and their job keys in the order N single
-- takes (RPOPLPUSH or ZPOPMIN, then LPUSH) would have taken them, and leaves
-- wait, prioritized and active as those would: a run of ids moves with one
-- LRANGE, LTRIM and LPUSH instead of a command per job.
local function takeMany(need)
  local ids, keys = {}, {}
  -- Keeps list[first], list[first + step], ... up to list[last] if they are
  -- jobs, checked together (see existing). Table lengths are counted here:
  -- Lua's # operator searches for the end of the table each time.
  local kept = 0
  local function keep(list, first, last, step)
    local candidates, candidateKeys, n = {}, {}, 0
    for i = first, last, step do
      local id = list[i]
      -- string.byte makes no string, where string.sub would make one per id.
      local b1, b2 = string.byte(id, 1, 2)
      if b1 ~= 48 or b2 ~= 58 then -- not "0:"
        n = n + 1
        candidates[n], candidateKeys[n] = id, base .. id
      end
    end
    local found = existing(candidateKeys)
    for i = 1, n do
      if found[i] then
        kept = kept + 1
        ids[kept], keys[kept] = candidates[i], candidateKeys[i]
      end
    end
  end
  -- ids[from..] go to the head of active, last taken ending up first.
  local function pushActive(from)
    for i = from, #ids, 1000 do
      redis.call("LPUSH", K.active, unpack(ids, i, math.min(i + 999, #ids)))
    end
  end
  while #ids < need do
    local tail = redis.call("LRANGE", K.wait, -(need - #ids), -1)
    if #tail == 0 then break end
    redis.call("LTRIM", K.wait, 0, -(#tail + 1))
    local from = kept + 1
    keep(tail, #tail, 1, -1)
    pushActive(from)
  end
  while #ids < need do
    local popped = redis.call("ZPOPMIN", K.prioritized, need - #ids)
    if #popped == 0 then
      -- Nothing prioritized left: reset the FIFO counter, as producers expect.
      redis.call("DEL", K.pc)
      break
    end
    local from = kept + 1
    keep(popped, 1, #popped - 1, 2)
    pushActive(from)
  end
  return ids, keys
end

-- Queue state, delayed promotion and the wake-up marker are handled once per
-- call: within one script nothing else can change them, so the result is the same
-- as N single fetches, each of which would repeat them to no effect.
local paused, maxed = queueState()
promoteDelayed(now, paused, maxed, maxEv)
local room = n
if not paused then
  local limit = tonumber(redis.call("HGET", K.meta, "concurrency") or "")
  if limit then room = math.min(n, limit - redis.call("LLEN", K.active)) end
end

local jobs = {}
if not paused and room > 0 then
  local ids, keys = takeMany(room)
  for i, id in ipairs(ids) do
    local jobKey = keys[i]
    if token ~= "0" then
      redis.call("SET", jobKey .. ":lock", token, "PX", lockMs)
    end
    redis.call("XADD", K.events, "*", "event", "active", "jobId", id, "prev", "waiting")
    redis.call("HINCRBY", jobKey, "ats", 1)
    if worker ~= "" then
      redis.call("HSET", jobKey, "processedOn", nowS, "pb", worker)
    else
      redis.call("HSET", jobKey, "processedOn", nowS)
    end
    jobs[i] = id
  end
end

if #jobs > 0 then
  -- Wake the next idle worker: BZPOPMIN consumed the marker that woke us.
  addReadyMarker()
  return {0, jobs}
end
return {nextDelayedDue(), jobs}
