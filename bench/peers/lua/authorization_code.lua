-- POST BENCH_TOKEN_PATH grant_type=authorization_code with PKCE (client_id in the body and
-- client_secret_basic): every request redeems one seeded code. BENCH_TOKEN_FILE lines are
-- "<code> <code_verifier>" (both URL-safe); BENCH_REDIRECT_URI is form-encoded.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local path = os.getenv("BENCH_TOKEN_PATH")
local client_id = os.getenv("BENCH_CLIENT_ID")
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
    return wrk.format("GET", "/")
  end
  local code, verifier = entry:match("^(%S+) (%S+)$")
  return wrk.format(
    "POST",
    path,
    headers,
    "grant_type=authorization_code&code=" .. code .. "&code_verifier=" .. verifier
      .. "&redirect_uri=" .. redirect_uri .. "&client_id=" .. client_id
  )
end
