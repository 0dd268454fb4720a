-- extend_locks: renew the locks we still own and take those jobs off the stalled
-- candidate set. ARGV: 1 base, 2 lock duration (ms), then pairs id, token.
-- Returns the ids whose lock is gone or owned by another token.
local lockMs = tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local token = ARGV[i + 1]
  local lockKey = base .. id .. ":lock"
  if redis.call("GET", lockKey) == token then
    redis.call("SET", lockKey, token, "PX", lockMs)
    redis.call("SREM", K.stalled, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
