-- GET the URL's path (ceiling route, JWKS, metadata): one pre-built request, reused.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

wrk.method = "GET"
wrk.headers["Accept"] = "application/json"
