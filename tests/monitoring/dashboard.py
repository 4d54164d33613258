"""The chart's Grafana dashboard as Grafana would query Prometheus: its targets and template variables with
concrete values in place of ``$namespace``, ``$authserver`` and Grafana's ``$__rate_interval``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "charts" / "authyard-operator" / "dashboards" / "authyard.json"
)

# Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape interval); one minute is what
# it comes to for a few hours of data at the ServiceMonitors' 30 s, and it spans the tests' traffic.
RATE_INTERVAL = "1m"
# The variables' values in every test: the AuthServer platform/auth that the tests deploy.
VARIABLE_VALUES = {"namespace": "platform", "authserver": "auth"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


@dataclass(frozen=True)
class Target:
    panel: str
    ref_id: str
    expr: str
    legend_format: str

    @property
    def id(self) -> str:
        return f"{self.panel} [{self.ref_id}]"


@dataclass(frozen=True)
class VariableQuery:
    """``label_values(selector, label)``: Grafana asks /api/v1/label/<label>/values?match[]=<selector>."""

    name: str
    selector: str
    label: str


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])  # a collapsed row keeps its panels inside it


def targets(dashboard: dict[str, Any]) -> list[Target]:
    return [
        Target(panel["title"], target["refId"], target["expr"], target.get("legendFormat", ""))
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets") or []
        if target.get("expr")
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[VariableQuery]:
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text.strip())
        assert match, f"variable {variable['name']}: only label_values(...) queries are understood: {text}"
        found.append(VariableQuery(variable["name"], match.group(1) or "", match.group(2)))
    return found


def resolve(expression: str, values: Mapping[str, str] = VARIABLE_VALUES) -> str:
    """The expression with every variable replaced; an unknown variable is an error, never left behind."""
    known = {"__rate_interval": RATE_INTERVAL, **values}

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in known:
            raise KeyError(f"no value for dashboard variable ${name} in {expression!r}")
        return known[name]

    return _VARIABLE.sub(value, expression)
