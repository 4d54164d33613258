-- POST /token grant_type=authorization_code with PKCE: every request redeems one seeded code.
-- BENCH_TOKEN_FILE lines are "<code> <code_verifier>" (both URL-safe); BENCH_REDIRECT_URI is form-encoded.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
}
local redirect_uri = os.getenv("BENCH_REDIRECT_URI")
local slice

function init(args)
  slice = load_slice()
end

function request()
  local entry = take(slice)
  if entry == nil then
    return wrk.format("GET", "/healthz")
  end
  local code, verifier = entry:match("^(%S+) (%S+)$")
  return wrk.format(
    "POST",
    "/token",
    headers,
    "grant_type=authorization_code&code=" .. code .. "&code_verifier=" .. verifier
      .. "&redirect_uri=" .. redirect_uri
  )
end
