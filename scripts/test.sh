#!/usr/bin/env bash
# The whole test suite, from a bare machine: installs what it needs, lints, then runs every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Browser and PostgreSQL tests must run here, never skip quietly.
export AUTHYARD_REQUIRE_BROWSER=1
exec .venv/bin/pytest "$@"
