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

source scripts/bench-prereqs.sh

exec .venv/bin/python -m bench.peers "$@"
