-- retry_now: a failed attempt retried at once (our "retryJob"). The job goes back to
-- wait (LPUSH, RPUSH for lifo; the paused list while paused) or to prioritized.
-- ARGV: 1 base, 2 now (ms), 3 id, 4 token, 5 failedReason, 6 stacktrace entry,
--       7 stacktrace limit (-1 = none), 8 lifo ("1"/"0").
-- Returns 0, or -1/-2/-3/-6 as in finish.lua.
local now = tonumber(ARGV[2])
local id = ARGV[3]
local token = ARGV[4]
local maxEv = maxEvents()

local paused, maxed = queueState()
promoteDelayed(now, paused, maxed, maxEv)

local jobKey = base .. id
local rc = takeFromActive(jobKey, id, token)
if rc ~= 0 then return rc end

redis.call("HSET", jobKey, "failedReason", ARGV[5])
appendStacktrace(jobKey, ARGV[6], tonumber(ARGV[7]))

local prio = tonumber(redis.call("HGET", jobKey, "priority")) or 0
if prio > 0 then
  addPrioritized(id, prio)
elseif ARGV[8] == "1" then
  redis.call("RPUSH", waitTarget(paused), id)
else
  redis.call("LPUSH", waitTarget(paused), id)
end
paused, maxed = queueState()
if not paused and not maxed then addReadyMarker() end

redis.call("HINCRBY", jobKey, "atm", 1)
redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "waiting", "jobId", id, "prev", "failed")
return 0
