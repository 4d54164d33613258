-- POST /token grant_type=client_credentials, the client authenticated by a projected service-account token
-- (workload identity, RFC 7523 §2.2 with a trusted issuer's JWT): the same token on every request, as a pod
-- sends it until the kubelet rotates it (BENCH_ASSERTION).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

wrk.method = "POST"
wrk.path = "/token"
wrk.body = "grant_type=client_credentials&scope=" .. (os.getenv("BENCH_SCOPE") or "")
  .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
  .. "&client_assertion=" .. os.getenv("BENCH_ASSERTION")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
