#!/usr/bin/env bash
# Operator scale benchmark: the emulated Kubernetes API, `authyard-operator`, an AuthServer
# served by `authserver serve` on a throwaway PostgreSQL 15, then N OAuthClients; prints the time until all
# are Ready, reconciles/s, the operator's peak RSS and the auth server's client count. Loopback only.
#   scripts/bench-operator.sh                    N = 100, then N = 1000
#   scripts/bench-operator.sh --clients 50       one smaller run
#   scripts/bench-operator.sh --json out.json    also write the figures as JSON
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x /usr/lib/postgresql/15/bin/postgres ]]; then
  scripts/setup.sh --test
else
  scripts/setup.sh
fi
exec .venv/bin/python -m bench.operator_scale "$@"
