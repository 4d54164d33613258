-- POST /token grant_type=client_credentials, client_secret_basic, rotating over many clients: each line of
-- BENCH_TOKEN_FILE is one client's base64(id:secret); each thread cycles through its own slice, in order.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local body = "grant_type=client_credentials&scope=" .. (os.getenv("BENCH_SCOPE") or "")
local slice
local position = 0

function init(args)
  slice = load_slice()
end

function request()
  position = position % #slice + 1
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. slice[position],
  }, body)
end
