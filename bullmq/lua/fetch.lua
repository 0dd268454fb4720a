-- fetch: move up to N jobs to active (our batch form of "moveToActive").
-- ARGV: 1 base, 2 now (ms), 3 lock token, 4 lock duration (ms), 5 max jobs,
--       6 worker name for "pb" ("" = none).
-- Returns {nextDelayedDue, {{id, HGETALL}, ...}}; nextDelayedDue is 0 when jobs
-- were returned or nothing is delayed.
--
-- Each loop iteration is exactly one single fetch (state read, promotion, take,
-- lock, events, marker), so one call with N leaves Redis as N calls with 1 would.
-- Numbers written back to Redis stay the caller's strings: Lua would format
-- each one with sprintf, which costs more than the command that stores it.
local nowS = ARGV[2]
local now = tonumber(nowS)
local token = ARGV[3]
local lockMs = ARGV[4]
local n = tonumber(ARGV[5])
local worker = ARGV[6]

local maxEv = maxEvents()

-- Takes the next id: wait first (consumer end = right), then the lowest priority
-- score. Legacy v4 marker ids ("0:...") and ids whose hash is gone are dropped.
-- Returns the id and the job hash as it was before this fetch.
local function takeNext()
  while true do
    local id = redis.call("RPOPLPUSH", K.wait, K.active)
    if not id then break end
    if string.sub(id, 1, 2) ~= "0:" then
      local h = redis.call("HGETALL", base .. id)
      if #h > 0 then return id, h end
    end
    redis.call("LREM", K.active, 1, id)
  end
  while true do
    local popped = redis.call("ZPOPMIN", K.prioritized)
    if not popped[1] then break end
    local id = popped[1]
    local h = redis.call("HGETALL", base .. id)
    if #h > 0 then
      redis.call("LPUSH", K.active, id)
      return id, h
    end
  end
  -- Nothing prioritized left: reset the FIFO counter, as producers expect.
  redis.call("DEL", K.pc)
  return nil
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

-- The hashes are returned as they were before the fetch; the caller applies
-- processedOn, pb and ats+1 itself (saving a read per job).
local jobs = {}
if not paused then
  for _ = 1, room do
    local id, h = takeNext()
    if not id then break end
    local jobKey = base .. id
    if token ~= "0" then
      redis.call("SET", jobKey .. ":lock", token, "PX", lockMs)
    end
    redis.call("XADD", K.events, "*", "event", "active", "jobId", id, "prev", "waiting")
    -- ats+1 from the hash just read, in the same HSET (one call instead of two).
    local ats = 1
    for f = 1, #h, 2 do
      if h[f] == "ats" then ats = (tonumber(h[f + 1]) or 0) + 1 break end
    end
    if worker ~= "" then
      redis.call("HSET", jobKey, "processedOn", nowS, "ats", smallIntString(ats), "pb", worker)
    else
      redis.call("HSET", jobKey, "processedOn", nowS, "ats", smallIntString(ats))
    end
    jobs[#jobs + 1] = {id, h}
  end
end

if #jobs > 0 then
  -- Wake the next idle worker: BZPOPMIN consumed the marker that woke us.
  addReadyMarker()
  return {0, jobs}
end
return {nextDelayedDue(), jobs}
