#!/usr/bin/env bash
# What every benchmark needs before it runs, installed only when missing: wrk (Debian) and the project
# environment (scripts/setup.sh, with PostgreSQL 15's server binaries when they are not there yet).
# Sourced by scripts/bench.sh and scripts/bench-peer.sh from the repository root.
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
