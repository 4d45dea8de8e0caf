-- The request mix of bench/load.py, and a tally of the answers per key class.
--
-- bench/load.py writes a plan (mode 0600, in a temporary directory; its path in
-- KEYWARD_LOAD_PLAN) holding the tokens it minted for this run:
--   drain_at <Unix ms>
--   track <class>    (keep the send time of each answer of that class, 200 or not)
--   entry <index> <weight> <class> <path> <key id or -> <expected labels> <token or ->
-- Each request carries `X-Request-Id: <entry index>.<Unix ms when it was built>`,
-- which the server echoes, so every response is matched to the key and path it
-- was sent with and to its send time, whatever the order responses come back
-- in on a thread's connections. From drain_at on, only GET /healthz without a
-- key is sent, so every counted request has its answer before wrk stops.
--
-- done() prints lines starting with KWLOAD for bench/load.py to read.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } kw_timespec;
int clock_gettime(int clock_id, kw_timespec *tp);
]])
local CLOCK_REALTIME = 0
local clock_buffer = ffi.new("kw_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_REALTIME, clock_buffer)
  return tonumber(clock_buffer.tv_sec) * 1000 + math.floor(tonumber(clock_buffer.tv_nsec) / 1e6)
end

local function split(line)
  local fields = {}
  for field in line:gmatch("%S+") do
    fields[#fields + 1] = field
  end
  return fields
end

local function read_plan()
  local path = os.getenv("KEYWARD_LOAD_PLAN")
  local file = assert(io.open(path, "r"), "KEYWARD_LOAD_PLAN names no readable file")
  local plan = { entries = {}, schedule = {}, tracked = {} }
  for line in file:lines() do
    local f = split(line)
    if f[1] == "drain_at" then
      plan.drain_at = tonumber(f[2])
    elseif f[1] == "track" then
      plan.tracked[f[2]] = true
    elseif f[1] == "entry" then
      local entry = {
        index = tonumber(f[2]),
        class = f[4],
        path = f[5],
        key_id = f[6] ~= "-" and f[6] or nil,
        expects = {},
        token = f[8] ~= "-" and f[8] or nil,
      }
      for label in f[7]:gmatch("[^,]+") do
        entry.expects[label] = true
      end
      plan.entries[entry.index] = entry
      for _ = 1, tonumber(f[3]) do
        plan.schedule[#plan.schedule + 1] = entry
      end
    end
  end
  file:close()
  return plan
end

-- The main Lua state: keep every thread, to read its tallies in done().
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end

-- Each thread's Lua state. Globals, so that done() can read them with thread:get().
tally = {} -- "<class> <path> <label>" -> responses
counted = {} -- key id -> responses the server should count as usage
accepted = {} -- key id -> 2xx responses
-- "<tracked class> ok|refused <send time, Unix ms>" -> responses. Flat, like every table
-- here: wrk's thread:get() cannot copy nested tables.
sent_times = {}
wrong = {} -- "<class> <path> <label>" -> responses outside the entry's expected labels
unmatched = 0

local plan, drain, sequence

function init(args)
  plan = read_plan()
  drain = { index = 0, class = "drain", path = "/healthz", expects = { ["200"] = true } }
  plan.entries[0] = drain
  sequence = (thread_index or 0) * 7
end

function request()
  sequence = sequence + 1
  local sent = now_ms()
  local entry = drain
  if sent < plan.drain_at then
    entry = plan.schedule[sequence % #plan.schedule + 1]
  end
  local headers = { ["X-Request-Id"] = entry.index .. "." .. sent }
  if entry.token then
    headers["Authorization"] = "Bearer " .. entry.token
  end
  return wrk.format("GET", entry.path, headers)
end

local function header(headers, name)
  for key, value in pairs(headers) do
    if key:lower() == name then
      return value
    end
  end
  return nil
end

-- Name what an answer is: its status, refined where the status alone is not enough.
local function label_of(entry, status, headers, body)
  if status == 200 then
    if entry.key_id and entry.path == "/api/v1/whoami" then
      if not body:find(entry.key_id, 1, true) then
        return "200-another-key"
      end
    end
    return "200"
  elseif status == 401 then
    return header(headers, "www-authenticate") and "401" or "401-no-challenge"
  elseif status == 429 then
    if not header(headers, "retry-after") then
      return "429-no-retry-after"
    end
    -- A key's own limit answers with its RateLimit-* headers; the invalid-key guard without.
    return header(headers, "ratelimit-limit") and "429-rate" or "429-guard"
  end
  return tostring(status)
end

local function bump(counts, name)
  counts[name] = (counts[name] or 0) + 1
end

function response(status, headers, body)
  local index, sent = (header(headers, "x-request-id") or ""):match("^(%d+)%.(%d+)$")
  local entry = index and plan.entries[tonumber(index)]
  if not entry then
    unmatched = unmatched + 1
    bump(tally, "unmatched - " .. status)
    return
  end
  sent = tonumber(sent)
  local label = label_of(entry, status, headers, body)
  local name = entry.class .. " " .. entry.path .. " " .. label
  bump(tally, name)
  if not entry.expects[label] then
    bump(wrong, name)
  end
  if entry.key_id and (status == 200 or status == 403 or label == "429-rate") then
    bump(counted, entry.key_id)
  end
  if entry.key_id and status >= 200 and status < 300 then
    bump(accepted, entry.key_id)
  end
  if plan.tracked[entry.class] then
    bump(sent_times, entry.class .. (status == 200 and " ok " or " refused ") .. sent)
  end
end

local function merge_sum(into, from)
  for key, value in pairs(from or {}) do
    into[key] = (into[key] or 0) + value
  end
end

function done(summary, latency, requests)
  local tally, counted, accepted, wrong, sent, lost = {}, {}, {}, {}, {}, 0
  for _, thread in ipairs(threads) do
    merge_sum(tally, thread:get("tally"))
    merge_sum(counted, thread:get("counted"))
    merge_sum(accepted, thread:get("accepted"))
    merge_sum(wrong, thread:get("wrong"))
    merge_sum(sent, thread:get("sent_times"))
    lost = lost + (thread:get("unmatched") or 0)
  end
  local e = summary.errors
  io.write(
    string.format(
      "KWLOAD summary %d %d %d %d %d %d %d %d %.0f %.0f %.0f\n",
      summary.requests,
      summary.duration,
      e.connect,
      e.read,
      e.write,
      e.timeout,
      e.status,
      lost,
      latency:percentile(50),
      latency:percentile(99),
      latency.max
    )
  )
  for name, count in pairs(tally) do
    io.write(string.format("KWLOAD tally %s %d\n", name, count))
  end
  for name, count in pairs(wrong) do
    io.write(string.format("KWLOAD wrong %s %d\n", name, count))
  end
  for key_id, count in pairs(counted) do
    io.write(string.format("KWLOAD counted %s %d\n", key_id, count))
  end
  for key_id, count in pairs(accepted) do
    io.write(string.format("KWLOAD accepted %s %d\n", key_id, count))
  end
  for name, count in pairs(sent) do
    io.write(string.format("KWLOAD sent %s %d\n", name, count))
  end
end
