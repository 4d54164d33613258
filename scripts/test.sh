#!/usr/bin/env bash
# The whole test suite, from a bare machine: installs what it needs, lints, type-checks, runs every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh --test
bash scripts/get-helm.sh          # real Helm 3 and Helm 4 binaries for the chart tests (into tools/)
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy                    # authserver/ and operator/authyard_operator, configured in pyproject.toml
.venv/bin/lint-imports            # the layering of ARCHITECTURE.md: contracts in pyproject.toml
# Browser, Helm, Lua (Argo CD health check), PgBouncer, HAProxy, podman (image), Prometheus (promtool,
# scrape), actionlint, Apache (mod_auth_openidc), Node (openid-client), slapd (LDAP) and wrk (the benchmark's
# Lua scripts) tests must run here, never skip quietly.
export AUTHYARD_REQUIRE_BROWSER=1 AUTHYARD_REQUIRE_HELM=1 AUTHYARD_REQUIRE_LUA=1 AUTHYARD_REQUIRE_PGBOUNCER=1
export AUTHYARD_REQUIRE_PODMAN=1 AUTHYARD_REQUIRE_HAPROXY=1 AUTHYARD_REQUIRE_PROMETHEUS=1
export AUTHYARD_REQUIRE_ACTIONLINT=1 AUTHYARD_REQUIRE_APACHE=1 AUTHYARD_REQUIRE_NODE=1 AUTHYARD_REQUIRE_SLAPD=1
export AUTHYARD_REQUIRE_WRK=1
exec .venv/bin/pytest "$@"
