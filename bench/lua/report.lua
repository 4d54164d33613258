-- Shared by every scenario script (loaded with dofile): hands each thread its own slice of a token file,
-- and prints one JSON line in done().
-- The harness sets BENCH_THREADS (wrk -t) and, for consuming scenarios, BENCH_TOKEN_FILE.

local threads = {}

-- Runs in the main Lua state, once per thread, before that thread's init().
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- No response() callback: with one, wrk hands every response's headers and body to Lua, which costs wrk
-- more CPU for a token response (a dozen headers, a JWT) than for the ceiling's, on the cores the server
-- shares (wrk's SCRIPTING: without it "wrk will ignore the headers and body"). Errors come from wrk's own
-- count instead: every status >= 400, and none of the measured endpoints answers 1xx or 3xx.
exhausted = 0

-- The lines of BENCH_TOKEN_FILE that belong to this thread: line i goes to thread i mod BENCH_THREADS.
function load_slice()
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  local path = os.getenv("BENCH_TOKEN_FILE")
  local slice, index = {}, 0
  for line in io.lines(path) do
    if index % count == id and line ~= "" then
      slice[#slice + 1] = line
    end
    index = index + 1
  end
  return slice
end

-- The next unused entry of the slice; nil (and the thread stops) when the slice is used up.
function take(slice)
  local entry = slice[next_index]
  if entry == nil then
    exhausted = exhausted + 1
    wrk.thread:stop()
    return nil
  end
  next_index = next_index + 1
  return entry
end
next_index = 1

function done(summary, latency, requests)
  local counted_exhausted = 0
  for _, thread in ipairs(threads) do
    counted_exhausted = counted_exhausted + (thread:get("exhausted") or 0)
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"responses":%d,"duration_us":%d,"bytes":%d,'
      .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,'
      .. '"socket_errors":%d,"http_errors":%d,"errors":%d,"exhausted":%d}\n',
    summary.requests, summary.requests, summary.duration, summary.bytes,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    socket_errors, e.status, socket_errors + e.status, counted_exhausted
  ))
end
