-- POST /token grant_type=refresh_token: every request consumes one seeded refresh token (one per line
-- of BENCH_TOKEN_FILE, URL-safe); each thread uses only its own slice, each token once.
-- Optional, for other servers (bench/peers): BENCH_TOKEN_PATH (default /token), BENCH_CLIENT_ID (also sent in
-- the body), BENCH_IDLE_PATH (what a thread GETs once its tokens are spent; default /healthz).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local path = os.getenv("BENCH_TOKEN_PATH") or "/token"
local idle_path = os.getenv("BENCH_IDLE_PATH") or "/healthz"
local client_id = os.getenv("BENCH_CLIENT_ID")
local client_field = client_id and ("&client_id=" .. client_id) or ""

local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
}
local slice

function init(args)
  slice = load_slice()
end

function request()
  local token = take(slice)
  if token == nil then
    return wrk.format("GET", idle_path)
  end
  return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=" .. token .. client_field)
end
