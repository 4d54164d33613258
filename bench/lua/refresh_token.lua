-- POST /token grant_type=refresh_token: every request consumes one seeded refresh token (one per line
-- of BENCH_TOKEN_FILE, URL-safe); each thread uses only its own slice, each token once.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

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
    return wrk.format("GET", "/healthz")
  end
  return wrk.format("POST", "/token", headers, "grant_type=refresh_token&refresh_token=" .. token)
end
