#!/usr/bin/env bash
# Quick start: the auth server on the embedded default (SQLite in ./demo-data), with a demo client and
# user created on first start; their credentials are written to ./demo-data/authserver-demo.json (0600).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
mkdir -p "$root/demo-data"
cd "$root/demo-data"
exec "$root/.venv/bin/authserver" demo --host 127.0.0.1 --port "${PORT:-8080}" "$@"
