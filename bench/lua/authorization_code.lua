-- POST /token grant_type=authorization_code with PKCE: every request redeems one seeded code.
-- BENCH_TOKEN_FILE lines are "<code> <code_verifier>" (both URL-safe); BENCH_REDIRECT_URI is form-encoded.
-- Optional, for other servers (bench/peers): BENCH_TOKEN_PATH (default /token), BENCH_CLIENT_ID (also sent in
-- the body), BENCH_IDLE_PATH (what a thread GETs once its codes are spent; default /healthz).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local path = os.getenv("BENCH_TOKEN_PATH") or "/token"
local idle_path = os.getenv("BENCH_IDLE_PATH") or "/healthz"
local client_id = os.getenv("BENCH_CLIENT_ID")
local client_field = client_id and ("&client_id=" .. client_id) or ""
local redirect_uri = os.getenv("BENCH_REDIRECT_URI")
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
}
local slice

function init(args)
  slice = load_slice()
end

function request()
  local entry = take(slice)
  if entry == nil then
    return wrk.format("GET", idle_path)
  end
  local code, verifier = entry:match("^(%S+) (%S+)$")
  return wrk.format(
    "POST",
    path,
    headers,
    "grant_type=authorization_code&code=" .. code .. "&code_verifier=" .. verifier
      .. "&redirect_uri=" .. redirect_uri .. client_field
  )
end
