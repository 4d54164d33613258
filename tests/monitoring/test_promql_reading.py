"""The little PromQL reading the monitoring tests do (promql.py, dashboard.py) reads the forms the chart
uses, and refuses what it cannot read rather than misreading it."""

from __future__ import annotations

import pytest

from tests.monitoring import dashboard
from tests.monitoring.promql import (
    Aggregation,
    aggregations,
    legend_labels,
    template_labels,
    without_threshold,
)


@pytest.mark.parametrize(
    ("alert", "series"),
    [
        ("sum(a) / sum(b)\n  > 0.05\n", "sum(a) / sum(b)"),
        ("a / (sum by (x) (b) > 0)\n  > 0.9", "a / (sum by (x) (b) > 0)"),
        ("max by (n) (k) < 2", "max by (n) (k)"),
        ("time() - t > 7200", "time() - t"),
        ('c{condition="Ready"} == 0', 'c{condition="Ready"}'),
        ('(max(l{namespace="ns"}) or vector(0)) < 1', '(max(l{namespace="ns"}))'),
        ("(a < 5) and on (n) (b == 0)", "(a < 5) and on (n) (b == 0)"),  # no final threshold: unchanged
    ],
)
def test_without_threshold_leaves_the_series_under_the_comparison(alert: str, series: str) -> None:
    assert without_threshold(alert) == series


def test_aggregations_are_found_nested_with_their_arguments() -> None:
    expression = (
        'histogram_quantile(0.95, sum by (write, le) (rate(x_bucket{a="("}[1m]))) / max(sum by (pool) (y))'
    )
    assert aggregations(expression) == [
        Aggregation(("write", "le"), 'rate(x_bucket{a="("}[1m])'),
        Aggregation(("pool",), "y"),
    ]


def test_an_aggregation_written_after_its_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="before the aggregated argument"):
        aggregations("sum(rate(x[1m])) by (route)")


def test_labels_read_by_legends_and_alert_templates() -> None:
    assert legend_labels("{{service}} {{ pool }} in use") == {"service", "pool"}
    assert template_labels("AuthServer {{ $labels.namespace }}/{{ $labels.service }}", "{{ $value }}") == {
        "namespace",
        "service",
    }


def test_dashboard_variables_are_resolved_or_refused() -> None:
    resolved = dashboard.resolve(
        'rate(x{namespace=~"$namespace", service=~"${authserver}"}[$__rate_interval])'
    )
    assert resolved == f'rate(x{{namespace=~"platform", service=~"auth"}}[{dashboard.RATE_INTERVAL}])'
    with pytest.raises(KeyError, match="unknown"):
        dashboard.resolve('x{a=~"$unknown"}')
