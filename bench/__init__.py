"""The Authyard benchmark harness: ``bash scripts/bench.sh`` or ``python -m bench``.

It starts ``authserver serve`` exactly as users run it, seeds what each scenario needs, drives every
scenario with wrk on loopback (Lua scripts in ``bench/lua``), measures the same run's ceiling (a constant
JSON route on the same uvicorn settings), interactive login throughput, worker RSS and a py-spy profile,
prints a markdown table and writes ``bench/results/<timestamp>.json``.
"""
