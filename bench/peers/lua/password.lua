-- POST BENCH_TOKEN_PATH grant_type=password (Authly only: Authyard has no password grant). Usernames come
-- from this thread's slice of BENCH_TOKEN_FILE, in turn from a random start, all with BENCH_PASSWORD: the
-- peer limits each username to a few logins a minute, so the load is spread over many users.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local path = os.getenv("BENCH_TOKEN_PATH")
local password = os.getenv("BENCH_PASSWORD")
local scope = os.getenv("BENCH_SCOPE") or ""
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local slice
local position

function init(args)
  slice = load_slice()
  math.randomseed(os.time() * 7 + id)
  position = math.random(#slice)
end

function request()
  position = position % #slice + 1
  return wrk.format(
    "POST", path, headers,
    "grant_type=password&username=" .. slice[position] .. "&password=" .. password .. "&scope=" .. scope
  )
end
