-- POST BENCH_TOKEN_PATH grant_type=refresh_token (client_id in the body and client_secret_basic, so a server
-- that authenticates the client and one that only reads client_id get the same request). Every request
-- spends one seeded refresh token of this thread's slice of BENCH_TOKEN_FILE, each once.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local path = os.getenv("BENCH_TOKEN_PATH")
local client_id = os.getenv("BENCH_CLIENT_ID")
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
    return wrk.format("GET", "/")
  end
  return wrk.format(
    "POST", path, headers, "grant_type=refresh_token&refresh_token=" .. token .. "&client_id=" .. client_id
  )
end
