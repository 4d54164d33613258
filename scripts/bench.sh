#!/usr/bin/env bash
# The benchmark, one command: installs wrk and the Python environment if missing, then runs
# `python -m bench` (auth server on SQLite and a throwaway PostgreSQL 15, wrk on loopback, a markdown table
# on stdout and bench/results/<timestamp>.json).
#   scripts/bench.sh                  the full matrix, 5 s per row
#   scripts/bench.sh --duration 3     shorter rows
#   scripts/bench.sh --quick          smoke test: concurrency 50, 2 workers, 2 s per row
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-prereqs.sh

exec .venv/bin/python -m bench "$@"
