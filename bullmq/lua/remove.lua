-- remove: delete jobs that no worker holds (the dead-letter redrive removes the
-- entries it has re-queued). A locked job is left alone (-6): it is being processed.
-- ARGV: 1 base, then job ids. Returns one code per job: 0 removed, -1 missing, -6 locked.
local maxEv = maxEvents()
local codes = {}

local function removeOne(id)
  local jobKey = base .. id
  if redis.call("EXISTS", jobKey) == 0 then return -1 end
  if redis.call("EXISTS", jobKey .. ":lock") == 1 then return -6 end
  local prev = "unknown"
  for _, list in ipairs({ {K.wait, "waiting"}, {K.paused, "paused"}, {K.active, "active"} }) do
    if redis.call("LREM", list[1], 0, id) > 0 then prev = list[2] end
  end
  for _, set in ipairs({ {K.prioritized, "prioritized"}, {K.delayed, "delayed"},
                         {K.completed, "completed"}, {K.failed, "failed"} }) do
    if redis.call("ZREM", set[1], id) > 0 then prev = set[2] end
  end
  redis.call("SREM", K.stalled, id)
  redis.call("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies", jobKey .. ":processed",
    jobKey .. ":failed", jobKey .. ":unsuccessful")
  redis.call("XADD", K.events, "MAXLEN", "~", maxEv, "*", "event", "removed", "jobId", id, "prev", prev)
  return 0
end

for i = 2, #ARGV do
  codes[#codes + 1] = removeOne(ARGV[i])
end
return codes
