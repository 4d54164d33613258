"""Just enough reading of PromQL for the monitoring tests: what an expression aggregates by, which labels a
template or legend reads, which metrics it selects, and the series under an alert's threshold.

The expressions read here are the chart's own (alerts and dashboard), written in the prefix form
``sum by (a, b) (argument)``; an expression in another form fails loudly rather than being misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

CHART_FILES = Path(__file__).resolve().parents[2] / "charts" / "authyard-operator" / "files"
KUBE_STATE_METRICS_CONFIG = CHART_FILES / "kube-state-metrics-authyard.yaml"

METRIC = re.compile(r"\b(authserver_[a-z_]+|authyard_[a-z_]+)\b")
_BY = re.compile(r"\bby\s*\(([^)]*)\)\s*")
_POSTFIX_BY = re.compile(r"\)\s*by\s*\(")
# A comparison with a number at the very end is the alert's threshold: comparison operators bind loosest
# of all but the set operators, so what is left is the whole expression being compared.
_THRESHOLD = re.compile(r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?[0-9][0-9.eE+-]*\s*$")
# ``or vector(0)``: a fallback that makes an alert fire when the series are missing; it would also make the
# expression "return data" when nothing is scraped at all.
_FALLBACK = re.compile(r"\s+or\s+vector\(\s*[-+]?[0-9.]+\s*\)")
_TEMPLATE_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
_LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Aggregation:
    labels: tuple[str, ...]
    argument: str


def _balanced(text: str, start: int) -> int:
    """The index just past the parenthesis that closes the one at ``start`` (parentheses inside quoted
    strings, such as a regular expression in a label matcher, do not count)."""
    assert text[start] == "(", text[start:]
    depth = 0
    quote: str | None = None
    index = start
    while index < len(text):
        character = text[index]
        if quote:
            if character == "\\":
                index += 1
            elif character == quote:
                quote = None
        elif character in "\"'`":
            quote = character
        elif character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ValueError(f"unbalanced parentheses in {text!r}")


def aggregations(expression: str) -> list[Aggregation]:
    """Every ``by (labels) (argument)`` in the expression, nested ones included."""
    if _POSTFIX_BY.search(expression):
        raise ValueError(f"write `by (...)` before the aggregated argument: {expression!r}")
    found = []
    for match in _BY.finditer(expression):
        labels = tuple(label.strip() for label in match.group(1).split(",") if label.strip())
        start = match.end()
        if start >= len(expression) or expression[start] != "(":
            raise ValueError(f"`by (...)` without an argument after it: {expression!r}")
        found.append(Aggregation(labels, expression[start + 1 : _balanced(expression, start) - 1].strip()))
    return found


def without_threshold(expression: str) -> str:
    """The alert's expression without its final comparison and without an ``or vector(...)`` fallback: the
    series a platform team would look at when the alert fires."""
    return _FALLBACK.sub("", _THRESHOLD.sub("", expression.strip()))


def template_labels(*templates: str) -> set[str]:
    """Labels that alert templates read (``{{ $labels.service }}``)."""
    return {label for template in templates for label in _TEMPLATE_LABEL.findall(template)}


def legend_labels(legend_format: str) -> set[str]:
    """Labels that a Grafana legend reads (``{{service}} {{pool}}``)."""
    return set(_LEGEND_LABEL.findall(legend_format))


def metrics_in(expression: str) -> set[str]:
    return set(METRIC.findall(expression))


def kube_state_metric_names() -> set[str]:
    """The metrics files/kube-state-metrics-authyard.yaml has kube-state-metrics export."""
    config = yaml.safe_load(KUBE_STATE_METRICS_CONFIG.read_text())
    return {
        f"{resource['metricNamePrefix']}_{metric['name']}"
        for resource in config["spec"]["resources"]
        for metric in resource["metrics"]
    }


def reads_kube_state_metrics(expression: str) -> bool:
    return bool(metrics_in(expression) & kube_state_metric_names())
