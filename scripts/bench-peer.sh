#!/usr/bin/env bash
# Authyard side by side with peer servers, one command: installs wrk and the project venv if missing (as
# scripts/bench.sh does), then runs `python -m bench.peers`, which installs the pinned peers outside the
# repository (Authly into its own venv, oidc-provider with npm; see bench/peers/install.py), starts every
# server with the same worker count on one throwaway PostgreSQL 15 cluster, drives them with wrk on loopback
# in interleaved rounds, prints a markdown table and writes bench/results/peer-<timestamp>.json.
#   scripts/bench-peer.sh                     c=10 and c=50, 2 workers, 2 rounds of 3 s per server and row
#   scripts/bench-peer.sh --duration 5 --rounds 3
#   scripts/bench-peer.sh --scenarios client_credentials,refresh_token --no-oidc-provider
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk
fi
if [[ ! -x /usr/lib/postgresql/15/bin/postgres ]]; then
  scripts/setup.sh --test
else
  scripts/setup.sh
fi

exec .venv/bin/python -m bench.peers "$@"
