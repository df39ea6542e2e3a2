-- wrk driver of the performance harness (bench/perf): replays a file of prepared requests and
-- records, per request, its endpoint name, status and latency (microseconds, send to last byte).
--
-- Environment:
--   PERF_REQUESTS  file of requests, one per line: name TAB method TAB path TAB token|- TAB body|-
--   PERF_OUT       where done() writes "name status latency_us done_us" lines and a summary
--                  (done_us: when the answer's last byte came, CLOCK_MONOTONIC in microseconds)
--   PERF_THREADS   wrk's -t (the harness runs one connection per thread, -c = -t, so that a
--                  thread's request() and response() calls alternate and can be paired)
--   PERF_RATE      total requests per second to pace at (open loop, millisecond timer); 0 or
--                  unset: as fast as responses come back (closed loop)
--   PERF_RETRY_AFTER  1: in a closed loop, a connection answered 503 with Retry-After waits
--                  that long before its next request, as a well-behaved client does
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } perf_timespec;
int clock_gettime(int clk_id, perf_timespec *tp);
]]
local clock = ffi.new("perf_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local nthreads = tonumber(os.getenv("PERF_THREADS") or "1")
local rate = tonumber(os.getenv("PERF_RATE") or "0")
local honour_retry_after = os.getenv("PERF_RETRY_AFTER") == "1"

-- main state: hand each thread its number, and keep them for done()
local threads = {}
local created = 0
function setup(thread)
  thread:set("tid", created)
  created = created + 1
  table.insert(threads, thread)
end

-- thread state
local reqs, names = {}, {}
local n, i, cur, t0 = 0, 0, nil, 0
out_name, out_status, out_latency, out_done, out_count = {}, {}, {}, {}, 0
local interval, next_at, answered = 0, 0, true
local hold_until = 0

function init(args)
  local index = 0
  for line in io.lines(os.getenv("PERF_REQUESTS")) do
    if index % nthreads == tid then
      local name, method, path, token, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = { ["Accept"] = "application/json", ["Accept-Encoding"] = "gzip, br" }
      if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
      if body == "-" then
        body = nil
      else
        headers["Content-Type"] = "application/json"
      end
      n = n + 1
      reqs[n] = wrk.format(method, path, headers, body)
      names[n] = name
    end
    index = index + 1
  end
  assert(n > 0, "PERF_REQUESTS has fewer requests than threads")
  i = 0
  if rate > 0 then
    interval = 1000000 * nthreads / rate
    next_at = now_us() + interval * tid / nthreads
  end
end

function request()
  i = i + 1
  if i > n then i = 1 end
  cur = names[i]
  t0 = now_us()
  return reqs[i]
end

function response(status, headers, body)
  answered = true
  out_count = out_count + 1
  out_name[out_count] = cur
  out_status[out_count] = status
  local t = now_us()
  out_latency[out_count] = math.floor(t - t0)
  out_done[out_count] = math.floor(t)
  if honour_retry_after and status == 503 then
    local wait = tonumber(headers["Retry-After"] or headers["retry-after"] or "")
    if wait then hold_until = t + wait * 1000000 end
  end
end

if rate <= 0 and honour_retry_after then
  function delay()
    local wait = (hold_until - now_us()) / 1000
    if wait < 1 then return 0 end
    return math.floor(wait)
  end
end

if rate > 0 then
  -- wrk may ask for the delay more than once per request: the schedule moves on once per answer.
  function delay()
    local t = now_us()
    if answered then
      next_at = next_at + interval
      answered = false
    end
    if next_at < t - 1000000 then next_at = t end -- more than 1 s behind: drop the backlog
    local wait = (next_at - t) / 1000
    if wait < 1 then return 0 end
    return math.floor(wait)
  end
end

function done(summary, latency, requests)
  local file = assert(io.open(os.getenv("PERF_OUT"), "w"))
  local e = summary.errors
  file:write(string.format("#summary duration_us=%d requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
  for _, thread in ipairs(threads) do
    local count = thread:get("out_count")
    local tn, ts, tl = thread:get("out_name"), thread:get("out_status"), thread:get("out_latency")
    local td = thread:get("out_done")
    local lines = {}
    for k = 1, count do
      lines[#lines + 1] = tn[k] .. " " .. ts[k] .. " " .. tl[k] .. " " .. string.format("%d", td[k])
    end
    if count > 0 then file:write(table.concat(lines, "\n"), "\n") end
  end
  file:close()
end
