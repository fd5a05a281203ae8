-- meshlab's wrk script: sets method and body, counts statuses per thread, and at the end prints
-- one JSON line (after a marker) with the whole latency spectrum, statuses and error counters.
-- Arguments after `--`: method, body file ("" for none), "0" to skip counting statuses (wrk
-- then neither buffers headers and bodies nor calls into Lua per response).

local MARKER = "@@meshlab-wrk-json@@ "
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  local method = args[1]
  if method ~= nil and method ~= "" then
    wrk.method = method
  end
  local body_path = args[2]
  if body_path ~= nil and body_path ~= "" then
    local f = assert(io.open(body_path, "rb"))
    wrk.body = f:read("*a")
    f:close()
  end
  counting = args[3] ~= "0"
  if not counting then
    response = nil
  end
end

-- Runs in each thread's own Lua state: the counts are gathered in done() via thread:get().
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function int(x)
  return string.format("%.0f", x)
end

-- Every recorded value (wrk keeps one counter per microsecond up to the timeout) read straight
-- from wrk's `stats` struct via LuaJIT's FFI; trusted only when min, max and count agree.
local function buckets_ffi(latency)
  local ok, ffi = pcall(require, "ffi")
  if not ok then return nil end
  pcall(ffi.cdef, [[typedef struct { uint64_t count, limit, min, max; uint64_t data[?]; }
                    meshlab_wrk_stats;]])
  local okp, s = pcall(function() return ffi.cast("meshlab_wrk_stats **", latency)[0] end)
  if not okp or s == nil then return nil end
  local mn, mx = tonumber(s.min), tonumber(s.max)
  if mn ~= latency.min or mx ~= latency.max or mx >= tonumber(s.limit) then return nil end
  local out, total = {}, 0
  for v = mn, mx do
    local c = tonumber(s.data[v])
    if c > 0 then
      out[#out + 1] = "[" .. int(v) .. "," .. int(c) .. "]"
      total = total + c
    end
  end
  if total ~= tonumber(s.count) then return nil end
  return out, total
end

-- Fallback: latency(i) returns the i-th distinct value and its count, but wrk scans from min
-- each call, so only do it while (distinct values x range) stays small.
local function buckets_index(latency)
  local n = #latency
  if n * (latency.max - latency.min + 1) > 3e8 then return nil end
  local out, total = {}, 0
  for i = 1, n do
    local v, c = latency(i)
    out[#out + 1] = "[" .. int(v) .. "," .. int(c) .. "]"
    total = total + c
  end
  return out, total
end

local PCTS = {0.1, 1, 5, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5,
              99.9, 99.95, 99.99, 99.999}

function done(summary, latency, requests)
  local codes, parts = {}, {}
  codes_counted = true
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if t:get("counting") ~= true then codes_counted = false end
    if s ~= nil then
      for k, v in pairs(s) do codes[k] = (codes[k] or 0) + v end
    end
  end
  for k, v in pairs(codes) do
    parts[#parts + 1] = '"' .. int(k) .. '":' .. int(v)
  end

  local source = "ffi"
  local buckets, count = buckets_ffi(latency)
  if buckets == nil then
    source = "index"
    buckets, count = buckets_index(latency)
  end
  local pct = {}
  for _, p in ipairs(PCTS) do
    pct[#pct + 1] = "[" .. p .. "," .. int(latency:percentile(p)) .. "]"
  end
  local bucket_json = "null"
  if buckets ~= nil then
    bucket_json = "[" .. table.concat(buckets, ",") .. "]"
  else
    source = "percentiles"
  end
  local e = summary.errors
  io.write("\n", MARKER, "{",
    '"version":1,',
    '"threads":', #threads, ",",
    '"duration_us":', int(summary.duration), ",",
    '"requests":', int(summary.requests), ",",
    '"bytes":', int(summary.bytes), ",",
    '"errors":{"connect":', int(e.connect), ',"read":', int(e.read), ',"write":', int(e.write),
    ',"status":', int(e.status), ',"timeout":', int(e.timeout), "},",
    '"statuses":', codes_counted and ("{" .. table.concat(parts, ",") .. "}") or "null", ",",
    '"latency":{"source":"', source, '","count":', count and int(count) or "null",
    ',"min":', int(latency.min), ',"max":', int(latency.max),
    ',"mean":', string.format("%.3f", latency.mean),
    ',"stdev":', string.format("%.3f", latency.stdev),
    ',"percentiles":[', table.concat(pct, ","), "]",
    ',"buckets":', bucket_json, "}}\n")
end
