-- stalled: recover active jobs whose worker stopped renewing the lock (our
-- "moveStalledJobsToWait"). At most one run per stalled interval across all
-- workers, guarded by the stalled-check key.
-- ARGV: 1 base, 2 now (ms), 3 max stalled count, 4 stalled interval (ms).
-- Returns the recovered ids.
local now = tonumber(ARGV[2])
local maxStalled = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])

if redis.call("EXISTS", K.stalledCheck) == 1 then return {} end
redis.call("SET", K.stalledCheck, now, "PX", interval)

local maxEv = maxEvents()
redis.call("XTRIM", K.events, "MAXLEN", "~", maxEv)

local recovered = {}
-- Candidates are the ids seen active at the previous check whose lock was not
-- renewed since (renewal removes them from the set).
local candidates = redis.call("SMEMBERS", K.stalled)
if #candidates > 0 then
  redis.call("DEL", K.stalled)
  for _, id in ipairs(candidates) do
    local jobKey = base .. id
    if redis.call("EXISTS", jobKey .. ":lock") == 0 and redis.call("LREM", K.active, -1, id) > 0 then
      if redis.call("EXISTS", jobKey) == 1 then
        local stc = redis.call("HINCRBY", jobKey, "stc", 1)
        if stc > maxStalled then
          redis.call("HSET", jobKey, "defa", "job stalled more than allowable limit")
        end
        local paused, maxed = queueState()
        -- Consumer end, so the recovered job runs next.
        redis.call("RPUSH", waitTarget(paused), id)
        if not paused and not maxed then addReadyMarker() end
        redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "waiting", "jobId", id, "prev", "active")
        redis.call("XADD", K.events, "*", "event", "stalled", "jobId", id)
        recovered[#recovered + 1] = id
      end
    end
  end
end

local active = redis.call("LRANGE", K.active, 0, -1)
-- SADD in chunks: unpack() of a huge list would overflow the Lua C stack.
for i = 1, #active, 5000 do
  redis.call("SADD", K.stalled, unpack(active, i, math.min(i + 4999, #active)))
end
return recovered
