"""The chart's PrometheusRule as Prometheus's own tools read it, and promtool to read it.

A PrometheusRule is the Prometheus Operator's wrapper: Prometheus and promtool read a plain rule file, which
is its ``spec.groups`` under ``groups:``. The rule is rendered by the real ``helm template``.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.packaging.helm_support import VALUES_EXAMPLES, one, render
from tests.support.programs import require_program

# Set by scripts/test.sh: a missing promtool or prometheus fails instead of skipping.
REQUIRED_BY = "AUTHYARD_REQUIRE_PROMETHEUS"
PROMTOOL_TIMEOUT_SECONDS = 60

# The renderings the tests check (``helm template`` options). The chart's defaults turn leader election and
# the custom-resource (kube-state-metrics) alerts on, so "defaults" holds every alert the chart can render.
RENDERINGS: dict[str, dict[str, Any]] = {
    "defaults": {"sets": ('prometheusRule={"enabled": true}',)},
    "without-leader-election-and-resource-alerts": {
        "sets": (
            'prometheusRule={"enabled": true, "signingKeys": {"enabled": false}}',
            'leaderElection={"enabled": false}',
            "replicaCount=1",
        )
    },
    "values-monitoring-example": {"values_files": (VALUES_EXAMPLES / "values-monitoring.yaml",)},
}


def promtool() -> str:
    return require_program("promtool", REQUIRED_BY, package="prometheus")


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_SECONDS,
        check=False,
    )


@functools.cache
def _rendered_rule(rendering: str) -> dict[str, Any]:
    return one(render(**RENDERINGS[rendering]), "PrometheusRule")


def rendered_rule(rendering: str = "defaults") -> dict[str, Any]:
    """The PrometheusRule object ``helm template`` renders for one of RENDERINGS (rendered once)."""
    return copy.deepcopy(_rendered_rule(rendering))


def rule_file(rule: dict[str, Any]) -> dict[str, Any]:
    return {"groups": rule["spec"]["groups"]}


def write_rule_file(rule: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(rule_file(rule), sort_keys=False))
    return path


def alerts(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every alerting rule of the PrometheusRule, by alert name."""
    found: dict[str, dict[str, Any]] = {}
    for group in rule["spec"]["groups"]:
        for entry in group["rules"]:
            if "alert" in entry:
                assert entry["alert"] not in found, f"alert {entry['alert']} defined twice"
                found[entry["alert"]] = entry
    return found
