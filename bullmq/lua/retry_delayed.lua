-- retry_delayed: a failed attempt that will be retried after a backoff delay
-- (our "moveToDelayed"). The attempt counts (atm+1); no "failed" event is written.
-- ARGV: 1 base, 2 now (ms), 3 id, 4 token, 5 delay (ms), 6 failedReason,
--       7 stacktrace entry, 8 stacktrace limit (-1 = none).
-- Returns 0, or -1/-2/-3/-6 as in finish.lua.
local now = tonumber(ARGV[2])
local id = ARGV[3]
local token = ARGV[4]
local delay = tonumber(ARGV[5])
local maxEv = maxEvents()

local jobKey = base .. id
local rc = takeFromActive(jobKey, id, token)
if rc ~= 0 then return rc end

redis.call("HSET", jobKey, "failedReason", ARGV[6])
appendStacktrace(jobKey, ARGV[7], tonumber(ARGV[8]))
redis.call("HINCRBY", jobKey, "atm", 1)
redis.call("HSET", jobKey, "delay", delay)

local due = now + delay
redis.call("ZADD", K.delayed, delayedScore(due), id)
-- The event carries the absolute due time, not the duration.
redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "delayed", "jobId", id, "delay", due)
addDelayedMarker()
return 0
