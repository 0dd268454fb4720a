-- add: store a new job the way Node's Queue.add does (producer side).
-- ARGV: 1 base, 2 custom job id ("" = use the counter), 3 name, 4 data (JSON),
--       5 opts (JSON), 6 timestamp (ms), 7 delay (ms), 8 priority, 9 lifo ("1"/"0").
-- Returns {id, duplicated (1/0)}.
local customId = ARGV[2]
local timestamp = tonumber(ARGV[6])
local delay = tonumber(ARGV[7])
local priority = tonumber(ARGV[8])

-- The counter moves on every add, also for custom ids, like Node's.
local counter = redis.call("INCR", K.id)
local maxEv = maxEvents()

local id = customId
if id == "" then id = string.format("%.0f", counter) end
local jobKey = base .. id

if customId ~= "" and redis.call("EXISTS", jobKey) == 1 then
  redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "duplicated", "jobId", id)
  return {id, 1}
end

-- Node's opts pass through Lua cjson before being stored; do the same so numbers
-- and empty containers are encoded identically.
local opts = cjson.encode(cjson.decode(ARGV[5]))

redis.call("HSET", jobKey, "name", ARGV[3], "data", ARGV[4], "opts", opts,
  "timestamp", ARGV[6], "delay", delay, "priority", priority)
redis.call("XADD", K.events, "*", "event", "added", "jobId", id, "name", ARGV[3])

local paused, maxed = queueState()
if delay > 0 then
  local due = timestamp + delay
  redis.call("ZADD", K.delayed, delayedScore(due), id)
  redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "delayed", "jobId", id, "delay", due)
  addDelayedMarker()
elseif priority > 0 then
  addPrioritized(id, priority)
  if not paused and not maxed then addReadyMarker() end
  redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "waiting", "jobId", id)
else
  if ARGV[9] == "1" then
    redis.call("RPUSH", waitTarget(paused), id)
  else
    redis.call("LPUSH", waitTarget(paused), id)
  end
  if not paused and not maxed then addReadyMarker() end
  redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "waiting", "jobId", id)
end
return {id, 0}
