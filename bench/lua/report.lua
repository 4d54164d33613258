-- Shared by every scenario script (loaded with dofile): counts statuses per thread, hands each thread its
-- own slice of a token file, and prints one JSON line in done().
-- The harness sets BENCH_THREADS (wrk -t) and, for consuming scenarios, BENCH_TOKEN_FILE.

local threads = {}

-- Runs in the main Lua state, once per thread, before that thread's init().
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread-local counters (each wrk thread has its own Lua state).
responses = 0
non2xx = 0
exhausted = 0

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

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
  local counted_non2xx, counted_exhausted, counted_responses = 0, 0, 0
  for _, thread in ipairs(threads) do
    counted_non2xx = counted_non2xx + (thread:get("non2xx") or 0)
    counted_exhausted = counted_exhausted + (thread:get("exhausted") or 0)
    counted_responses = counted_responses + (thread:get("responses") or 0)
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"responses":%d,"duration_us":%d,"bytes":%d,'
      .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,'
      .. '"socket_errors":%d,"non2xx":%d,"errors":%d,"exhausted":%d}\n',
    summary.requests, counted_responses, summary.duration, summary.bytes,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    socket_errors, counted_non2xx, socket_errors + counted_non2xx, counted_exhausted
  ))
end
