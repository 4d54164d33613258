#!/usr/bin/env bash
# The commit the e2e workflow's upgrade job installs before it upgrades to this one, run in the clone:
#   bash scripts/e2e-previous-commit.sh [CANDIDATE]
# CANDIDATE is the pull request's base commit or the commit before the push. When it is empty, all zeros
# (a new branch, a manual run) or not in this clone (a force push), the first parent of HEAD is taken.
# Prints what it decided and why; writes `commit=<sha>` (empty when there is nothing to upgrade from: a
# first commit, or a previous commit without the chart) to $GITHUB_OUTPUT when that is set. Exit status 0
# in every one of those cases: having nothing to upgrade from is an answer, not a failure.
set -euo pipefail

chart="charts/authyard-operator/Chart.yaml"
candidate="${1:-}"

answer() {
  echo "$2"
  [[ -n "${GITHUB_OUTPUT:-}" ]] && echo "commit=$1" >>"$GITHUB_OUTPUT"
  [[ -n "${GITHUB_STEP_SUMMARY:-}" ]] && echo "$2" >>"$GITHUB_STEP_SUMMARY"
  exit 0
}

previous=""
if [[ -n "$candidate" && ! "$candidate" =~ ^0+$ ]] && git cat-file -e "$candidate^{commit}" 2>/dev/null; then
  previous="$(git rev-parse "$candidate^{commit}")"
else
  echo "no usable previous commit given (${candidate:-none}): taking the first parent of HEAD"
  previous="$(git rev-parse --verify --quiet "HEAD^1^{commit}" || true)"
  [[ -n "$previous" ]] || answer "" "HEAD has no parent: there is no previous chart version to upgrade from."
fi
if [[ "$previous" == "$(git rev-parse HEAD)" ]]; then
  answer "" "the previous commit $previous is HEAD itself: there is nothing to upgrade from."
fi
if ! git cat-file -e "$previous:$chart" 2>/dev/null; then
  answer "" "the previous commit $previous has no $chart: there is no previous chart version to upgrade from."
fi
answer "$previous" "upgrading from $previous ($(git log -1 --format=%s "$previous"))"
