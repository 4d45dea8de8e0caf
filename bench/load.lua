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
-- key is sent, so every counted request has its answer before wrk stops; the
-- requests built per class are counted too, to prove it (a connection has one
-- request in flight at a time, so built minus answered is what was in flight).
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

-- Each thread's Lua state counts answers under names (the first word says what):
--   tally <class> <path> <label>    answers
--   wrong <class> <path> <label>    answers outside the entry's expected labels
--   built <class> <path>            requests made
--   counted <key id>                answers the server should count as usage
--   accepted <key id>               2xx answers
--   sent <class> ok|refused <ms>    answers of a tracked class, by send time
--   unmatched                       answers without a readable X-Request-Id
-- wrk 4.1's thread:get() pops one value too many from the thread's stack when it
-- copies a table (script_copy_value), which corrupts memory after a few calls, so
-- done() reads scalars only: counter number i is the globals kw_name_<i> and
-- kw_count_<i>, and counters says how many there are.
counters = 0
local slots = {}

local function bump(name)
  local slot = slots[name]
  if slot == nil then
    counters = counters + 1
    slot = "kw_count_" .. counters
    slots[name] = slot
    _G["kw_name_" .. counters] = name
    _G[slot] = 0
  end
  _G[slot] = _G[slot] + 1
end

local plan, drain, sequence

function init(args)
  plan = read_plan()
  drain = { index = 0, class = "drain", path = "/healthz", expects = { ["200"] = true } }
  plan.entries[0] = drain
  sequence = (thread_index or 0) * 7
end

local first_request = true

function request()
  sequence = sequence + 1
  local sent = now_ms()
  local entry = drain
  -- wrk calls request() once in the first thread to check it and never sends that one:
  -- each thread's first request is a key-less one, so that it cannot look lost.
  if sent < plan.drain_at and not first_request then
    entry = plan.schedule[sequence % #plan.schedule + 1]
  end
  first_request = false
  bump("built " .. entry.class .. " " .. entry.path)
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

function response(status, headers, body)
  local index, sent = (header(headers, "x-request-id") or ""):match("^(%d+)%.(%d+)$")
  local entry = index and plan.entries[tonumber(index)]
  if not entry then
    bump("unmatched")
    return
  end
  sent = tonumber(sent)
  local label = label_of(entry, status, headers, body)
  local name = entry.class .. " " .. entry.path .. " " .. label
  bump("tally " .. name)
  if not entry.expects[label] then
    bump("wrong " .. name)
  end
  if entry.key_id and (status == 200 or status == 403 or label == "429-rate") then
    bump("counted " .. entry.key_id)
  end
  if entry.key_id and status >= 200 and status < 300 then
    bump("accepted " .. entry.key_id)
  end
  if plan.tracked[entry.class] then
    bump("sent " .. entry.class .. (status == 200 and " ok " or " refused ") .. sent)
  end
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for i = 1, thread:get("counters") or 0 do
      local name = thread:get("kw_name_" .. i)
      totals[name] = (totals[name] or 0) + thread:get("kw_count_" .. i)
    end
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
      totals["unmatched"] or 0,
      latency:percentile(50),
      latency:percentile(99),
      latency.max
    )
  )
  for name, count in pairs(totals) do
    io.write(string.format("KWLOAD %s %d\n", name, count))
  end
end
