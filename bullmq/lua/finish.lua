-- finish: move N active jobs to completed or failed (our batch form of
-- "moveToFinished"). Each job is checked on its own; a failing check gives that
-- job a negative code and does not stop the others.
-- ARGV: 1 base, 2 now (ms), 3 target "completed" | "failed", 4 job count, then per
-- job 9 values: id, token, value (returnvalue JSON | failedReason),
-- keep count (-1 all, 0 none, N newest), keep age (seconds, -1 = no age limit),
-- stacktrace entry (failed only), stacktrace limit (-1 = none), attempts,
-- deduplication id ("" = none; the caller read it from the job at fetch time).
-- Returns one code per job: 0 ok, -1 job missing, -2 lock missing, -3 not active,
-- -6 lock held by another token.
local nowS = ARGV[2] -- written as given: see fetch.lua
local now = tonumber(nowS)
local target = ARGV[3]
local n = tonumber(ARGV[4])
local failed = target == "failed"
local setKey = K.completed
if failed then setKey = K.failed end

local maxEv = maxEvents()
redis.call("XTRIM", K.events, "MAXLEN", "~", maxEv)

-- Releases a deduplication key that still points at this job and has no TTL
-- left to expire it on its own; otherwise later adds with that id are dropped.
local function releaseDedup(deid, id)
  if deid == "" then return end
  local deKey = base .. "de:" .. deid
  local ttl = redis.call("PTTL", deKey)
  if (ttl == -1 or ttl == 0) and redis.call("GET", deKey) == id then
    redis.call("DEL", deKey)
  end
end

-- DEL in chunks: unpack() of very long lists overflows Lua's C stack.
local function delAll(keys)
  for i = 1, #keys, 1000 do
    redis.call("DEL", unpack(keys, i, math.min(i + 999, #keys)))
  end
end

local function jobKeys(into, jobKey)
  local n = #into
  into[n + 1] = jobKey
  into[n + 2] = jobKey .. ":logs"
  into[n + 3] = jobKey .. ":dependencies"
  into[n + 4] = jobKey .. ":processed"
  into[n + 5] = jobKey .. ":failed"
  into[n + 6] = jobKey .. ":unsuccessful"
end

-- Keeps the newest keepCount and/or those younger than keepAge seconds; deletes
-- the rest with their keys and returns the set of their ids.
local function applyKeep(keepCount, keepAge)
  local doomed, gone = {}, {}
  if keepAge >= 0 then
    local cutoff = "(" .. string.format("%.0f", now - keepAge * 1000)
    local old = redis.call("ZRANGEBYSCORE", setKey, "-inf", cutoff)
    for _, oid in ipairs(old) do
      jobKeys(doomed, base .. oid)
      gone[oid] = true
    end
    if #old > 0 then redis.call("ZREMRANGEBYSCORE", setKey, "-inf", cutoff) end
  end
  if keepCount > 0 then
    local extra = redis.call("ZREVRANGE", setKey, keepCount, -1)
    for _, oid in ipairs(extra) do
      jobKeys(doomed, base .. oid)
      gone[oid] = true
    end
    if #extra > 0 then redis.call("ZREMRANGEBYRANK", setKey, 0, -(keepCount + 1)) end
  end
  delAll(doomed)
  return gone
end

-- Work that is the same for every job of the call is gathered and done once:
-- lock keys and stalled ids are released together, finished ids are added to the
-- set together, and a run of jobs with the same keep rule is trimmed once after
-- its last job. Trimming only ever removes the oldest entries, so trimming once
-- after a run leaves the set exactly as trimming after each job would.
--
-- A completed job's own writes (atm, returnvalue, finishedOn) wait for its
-- run's trim too: a job the trim deletes at once (with removeOnComplete 100,
-- most of a batch of 1,000) is then never written, which leaves the same state
-- as writing and deleting it.
local lockKeys, released, finishedIds = {}, {}, {}
local completedValues = {} -- id -> returnvalue, for the current run
local removed = {}
local pendingKeep = nil

local function writeCompleted(id, value)
  local jobKey = base .. id
  redis.call("HINCRBY", jobKey, "atm", 1)
  redis.call("HSET", jobKey, "returnvalue", value, "finishedOn", nowS)
end

local function flushFinished()
  if #finishedIds == 0 then return end
  local args = {}
  for k, fid in ipairs(finishedIds) do
    args[2 * k - 1], args[2 * k] = nowS, fid
  end
  for i = 1, #args, 1000 do
    redis.call("ZADD", setKey, unpack(args, i, math.min(i + 999, #args)))
  end
  local gone = {}
  if pendingKeep then gone = applyKeep(pendingKeep[1], pendingKeep[2]) end
  if not failed then
    for _, fid in ipairs(finishedIds) do
      if not gone[fid] then writeCompleted(fid, completedValues[fid]) end
    end
    completedValues = {}
  end
  finishedIds = {}
end

-- Numeric arguments repeat from job to job (keep rules, limits, attempts):
-- each distinct string is converted once.
local numbers = {}
local function num(s)
  local v = numbers[s]
  if v == nil then
    v = tonumber(s) or false
    numbers[s] = v
  end
  return v or nil
end

-- jobKey and lockKey were built by the caller's checks: Lua makes a new string
-- for every concatenation, so each is built once per job.
local function finishOne(i, jobKey, lockKey)
  local id = ARGV[i]
  local token = ARGV[i + 1]
  local value = ARGV[i + 2]
  local keepCount = num(ARGV[i + 3])
  local keepAge = num(ARGV[i + 4])
  local stackEntry = ARGV[i + 5]
  local stackLimit = num(ARGV[i + 6])
  local attempts = num(ARGV[i + 7]) or 0
  local deid = ARGV[i + 8]

  -- Existence, lock and active membership were checked by the caller.
  if token ~= "0" then lockKeys[#lockKeys + 1] = lockKey end
  released[#released + 1] = id
  releaseDedup(deid, id)

  -- A failed job's writes are not deferred: its new atm decides the
  -- retries-exhausted event, and failures are few.
  local atm = 0
  if failed then
    atm = redis.call("HINCRBY", jobKey, "atm", 1)
    redis.call("HSET", jobKey, "failedReason", value)
    appendStacktrace(jobKey, stackEntry, stackLimit)
    redis.call("HDEL", jobKey, "defa")
  end

  if keepCount ~= 0 then
    if pendingKeep and (pendingKeep[1] ~= keepCount or pendingKeep[2] ~= keepAge) then
      flushFinished()
    end
    pendingKeep = {keepCount, keepAge}
    finishedIds[#finishedIds + 1] = id
    if failed then
      redis.call("HSET", jobKey, "finishedOn", nowS)
    else
      completedValues[id] = value
    end
  else
    -- Removed at once (removeOnComplete/removeOnFail true): nothing to write.
    jobKeys(removed, jobKey)
  end

  if failed then
    redis.call("XADD", K.events, "*", "event", "failed", "jobId", id, "failedReason", value, "prev", "active")
    if atm >= attempts then
      redis.call("XADD", K.events, "*", "event", "retries-exhausted", "jobId", id, "attemptsMade", atm)
    end
  else
    redis.call("XADD", K.events, "*", "event", "completed", "jobId", id, "returnvalue", value, "prev", "active")
  end
  return 0
end

-- Takes the given ids out of active and returns the set of those it found. A
-- few go one LREM each; many go in one pass over the list, because each LREM
-- scans the list and a batch would cost batch × active (several in-flight
-- batches of 1,000 make active long). The order of the rest is kept, and the
-- occurrence nearest the consumer end is the one removed, as LREM -1 does.
local function takeManyFromActive(ids)
  local taken = {}
  if #ids < 32 then
    for _, id in ipairs(ids) do
      if redis.call("LREM", K.active, -1, id) > 0 then taken[id] = true end
    end
    return taken
  end
  local want = {}
  for _, id in ipairs(ids) do want[id] = true end
  -- Fetches push on the head, so the oldest batch, usually the one finishing,
  -- sits at the tail: when the tail holds exactly these ids, cut it off
  -- without reading the rest.
  if want[redis.call("LINDEX", K.active, -1)] then
    local tail = redis.call("LRANGE", K.active, -#ids, -1)
    for _, id in ipairs(tail) do
      if not want[id] or taken[id] then
        taken = {}
        break
      end
      taken[id] = true
    end
    if #tail == #ids and next(taken) then
      redis.call("LTRIM", K.active, 0, -(#ids + 1))
      return taken
    end
    taken = {}
  end
  local all = redis.call("LRANGE", K.active, 0, -1)
  local rest = {}
  for k = #all, 1, -1 do
    local id = all[k]
    if want[id] and not taken[id] then
      taken[id] = true
    else
      rest[#rest + 1] = id
    end
  end
  redis.call("DEL", K.active)
  -- rest runs from the tail to the head: push it back head first.
  local chunk = {}
  for k = #rest, 1, -1 do
    chunk[#chunk + 1] = rest[k]
    if #chunk == 1000 or k == 1 then
      redis.call("RPUSH", K.active, unpack(chunk))
      chunk = {}
    end
  end
  return taken
end

-- Each job's checks, as checkLockKey makes them, for the whole call at once:
-- its hash must exist (one EXISTS per chunk, see existing) and its lock hold
-- its token (one MGET per chunk of locks).
local codes = {}
local checked = {}
local jobKeyOf, lockKeyOf = {}, {}
for j = 1, n do
  jobKeyOf[j] = base .. ARGV[5 + (j - 1) * 9]
end
local found = existing(jobKeyOf)
local locked, lockedKeys = {}, {} -- jobs whose lock is read, and their lock keys
for j = 1, n do
  lockKeyOf[j] = jobKeyOf[j] .. ":lock"
  if not found[j] then
    codes[j] = -1
  elseif ARGV[5 + (j - 1) * 9 + 1] == "0" then
    codes[j] = 0
  else
    locked[#locked + 1], lockedKeys[#lockedKeys + 1] = j, lockKeyOf[j]
  end
end
for c = 1, #lockedKeys, 1000 do
  local last = math.min(c + 999, #lockedKeys)
  local held = redis.call("MGET", unpack(lockedKeys, c, last))
  for k = c, last do
    local j = locked[k]
    local v = held[k - c + 1]
    if not v then
      codes[j] = -2
    elseif v ~= ARGV[5 + (j - 1) * 9 + 1] then
      codes[j] = -6
    else
      codes[j] = 0
    end
  end
end
for j = 1, n do
  if codes[j] == 0 then checked[#checked + 1] = ARGV[5 + (j - 1) * 9] end
end
local taken = takeManyFromActive(checked)
for j = 0, n - 1 do
  if codes[j + 1] == 0 then
    if taken[ARGV[5 + j * 9]] then
      codes[j + 1] = finishOne(5 + j * 9, jobKeyOf[j + 1], lockKeyOf[j + 1])
    else
      codes[j + 1] = -3
    end
  end
end
flushFinished()
delAll(removed)
delAll(lockKeys)
for i = 1, #released, 1000 do
  redis.call("SREM", K.stalled, unpack(released, i, math.min(i + 999, #released)))
end

if redis.call("LLEN", K.wait) == 0 and redis.call("LLEN", K.active) == 0
    and redis.call("ZCARD", K.prioritized) == 0 then
  redis.call("XADD", K.events, "*", "event", "drained")
end
return codes
