-- POST /token grant_type=client_credentials with private_key_jwt (RFC 7523 §2.2): every request spends
-- one pre-signed client assertion (one per line of BENCH_TOKEN_FILE; the server accepts each jti once).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local prefix = "grant_type=client_credentials&scope=" .. (os.getenv("BENCH_SCOPE") or "")
  .. "&client_id=" .. os.getenv("BENCH_CLIENT_ID")
  .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
  .. "&client_assertion="
local slice

function init(args)
  slice = load_slice()
end

function request()
  local assertion = take(slice)
  if assertion == nil then
    return wrk.format("GET", "/healthz")
  end
  return wrk.format("POST", "/token", headers, prefix .. assertion)
end
