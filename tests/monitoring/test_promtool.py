"""The chart's PrometheusRule checked by promtool (Debian's ``prometheus`` package), not by our own reading.

* ``promtool check rules`` on every rendering: the defaults, with leader election and the custom-resource
  alerts off, and the monitoring example's values.
* ``promtool test rules`` on alerts_test.yaml: every alert the chart renders fires when it should (with the
  labels and annotations a platform team reads) and stays silent when it should not (just below the threshold,
  or not for long enough). A rendered alert without both kinds of case fails here.
* The dashboard's expressions that read kube-state-metrics (which no test process exports) are evaluated by
  promtool on series shaped like kube-state-metrics' (dashboard_test.yaml).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring import dashboard
from tests.monitoring.promql import legend_labels, reads_kube_state_metrics
from tests.monitoring.rule_files import RENDERINGS, alerts, rendered_rule, run_promtool, write_rule_file

HERE = Path(__file__).parent
ALERT_TESTS = HERE / "alerts_test.yaml"
DASHBOARD_TESTS = HERE / "dashboard_test.yaml"
_SERIES_LABEL = re.compile(r'(\w+)="')


@pytest.fixture(scope="module")
def default_rule() -> dict[str, Any]:
    return rendered_rule("defaults")


def _alert_cases(path: Path) -> list[dict[str, Any]]:
    return [
        case for test in yaml.safe_load(path.read_text())["tests"] for case in test.get("alert_rule_test", [])
    ]


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_promtool_check_rules_accepts_the_rendered_rule(rendering: str, tmp_path: Path) -> None:
    rule = rendered_rule(rendering)
    path = write_rule_file(rule, tmp_path / "rules.yaml")
    result = run_promtool("check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in rule["spec"]["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout, result.stdout


def test_the_renderings_differ_in_the_alerts_they_hold() -> None:
    """The default rendering holds every alert; leader election and the resource alerts can be left out."""
    everything = set(alerts(rendered_rule("defaults")))
    reduced = set(alerts(rendered_rule("without-leader-election-and-resource-alerts")))
    assert reduced < everything
    assert {"AuthyardOperatorNoLeader", "AuthyardOperatorSplitBrain", "AuthyardAuthServerNotReady"} <= (
        everything - reduced
    )
    assert set(alerts(rendered_rule("values-monitoring-example"))) == everything


def test_every_alert_has_a_case_that_fires_and_one_that_stays_silent(default_rule: dict[str, Any]) -> None:
    rendered = set(alerts(default_rule))
    cases = _alert_cases(ALERT_TESTS)
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert rendered - firing == set(), "alerts without a unit test that fires"
    assert rendered - silent == set(), "alerts without a unit test that stays silent"
    assert {case["alertname"] for case in cases} - rendered == set(), "unit tests of alerts that do not exist"
    for case in cases:
        for expected in case.get("exp_alerts") or []:
            assert "severity" in expected["exp_labels"], case["alertname"]
            assert set(expected["exp_annotations"]) == {"summary", "description"}, case["alertname"]


def test_kube_state_metrics_dashboard_expressions_have_promtool_tests() -> None:
    """The dashboard's expressions that read kube-state-metrics: no process here exports those metrics, so
    each is evaluated by promtool instead, and what it returns carries the labels its legend reads."""
    tested = {
        case["expr"]: case
        for test in yaml.safe_load(DASHBOARD_TESTS.read_text())["tests"]
        for case in test.get("promql_expr_test", [])
    }
    targets = [
        target for target in dashboard.targets(dashboard.load()) if reads_kube_state_metrics(target.expr)
    ]
    assert targets, "the dashboard reads no kube-state-metrics metric: is this file still needed?"
    for target in targets:
        expression = dashboard.resolve(target.expr)
        assert expression in tested, (
            f"{target.id}: no promtool test of {expression!r} in {DASHBOARD_TESTS.name}"
        )
        for sample in tested[expression]["exp_samples"]:
            assert legend_labels(target.legend_format) <= set(_SERIES_LABEL.findall(sample["labels"])), (
                target.id
            )


def test_promtool_unit_tests_pass(default_rule: dict[str, Any], tmp_path: Path) -> None:
    write_rule_file(default_rule, tmp_path / "rules.yaml")
    for path in (ALERT_TESTS, DASHBOARD_TESTS):
        shutil.copy(path, tmp_path / path.name)
    result = run_promtool("test", "rules", ALERT_TESTS.name, DASHBOARD_TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2, result.stdout
