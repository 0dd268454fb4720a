-- move_to_wait: give active jobs back without counting an attempt (shutdown, or
-- jobs we must not process now). Like Node's rate-limit path: the job goes to the
-- consumer end of wait (runs next), or ahead of its peers in prioritized.
-- ARGV: 1 base, 2 now (ms, unused but kept for symmetry), then pairs id, token.
-- Returns one code per job: 0 ok, or -1/-2/-3/-6 as in finish.lua.
local maxEv = maxEvents()
local codes = {}

local function moveOne(id, token)
  local jobKey = base .. id
  local rc = takeFromActive(jobKey, id, token)
  if rc ~= 0 then return rc end
  local paused, maxed = queueState()
  local prio = tonumber(redis.call("HGET", jobKey, "priority")) or 0
  if prio > 0 then
    redis.call("ZADD", K.prioritized, prio * 4294967296, id)
  else
    redis.call("RPUSH", waitTarget(paused), id)
  end
  redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "waiting", "jobId", id, "prev", "active")
  if not paused and not maxed then addReadyMarker() end
  return 0
end

for i = 3, #ARGV, 2 do
  codes[#codes + 1] = moveOne(ARGV[i], ARGV[i + 1])
end
return codes
