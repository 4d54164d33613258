"""The Argo CD health check shipped in the chart (health/argocd-health.lua), executed for real.

Each case of the decision table (documented at the top of the Lua file) is run through a Lua 5.x interpreter
(Debian's lua5.4 / lua5.3), with ``obj`` set the way Argo CD sets it. Without an interpreter the execution
tests skip with that reason (fail when AUTHYARD_REQUIRE_LUA is set); the structural tests always run.
Flux needs no script: its kstatus reads the Ready condition and status.observedGeneration natively.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.packaging.helm_support import CHART

LUA_FILE = CHART / "health" / "argocd-health.lua"
SNIPPET = CHART / "health" / "argocd-cm-patch.yaml"


def _lua_binary() -> str:
    for name in ("lua5.4", "lua5.3", "lua"):
        found = shutil.which(name)
        if found:
            return found
    message = "no Lua interpreter (apt-get install lua5.4) to execute the Argo CD health check"
    if os.environ.get("AUTHYARD_REQUIRE_LUA"):
        pytest.fail(message + " (AUTHYARD_REQUIRE_LUA is set)")
    pytest.skip(message)


def to_lua(value: Any) -> str:
    """A Python value as a Lua literal, the way Argo CD converts the object (maps -> tables, lists ->
    1-based sequences)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid Lua string literal for this content
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(key)}] = {to_lua(item)}" for key, item in value.items()) + "}"
    raise TypeError(type(value))


def run_health(obj: dict[str, Any]) -> tuple[str, str]:
    harness = (
        f"obj = {to_lua(obj)}\n"
        f"local check = assert(loadfile({json.dumps(str(LUA_FILE))}))\n"
        "local hs = check()\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    completed = subprocess.run(
        [_lua_binary(), "-"], input=harness, capture_output=True, text=True, timeout=10, check=True
    )
    status, _, message = completed.stdout.partition("\n")
    return status, message


def cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def resource(generation: int = 2, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "authyard.dev/v1alpha1",
        "kind": "AuthServer",
        "metadata": {"name": "auth", "namespace": "platform", "generation": generation},
        "spec": {"replicas": 1},
    }
    if status is not None:
        obj["status"] = status
    return obj


READY = cond("Ready", "True", "Available", "1/1 replicas ready")
CASES = [
    ("no status", resource(), "Progressing", "Waiting for the Authyard operator"),
    ("stale generation", resource(3, {"observedGeneration": 2, "conditions": [READY]}), "Progressing",
     "observe generation 3"),
    ("no observedGeneration", resource(1, {"conditions": [READY]}), "Progressing", "generation 1"),
    ("degraded", resource(2, {"observedGeneration": 2, "conditions": [
        cond("Ready", "False", "PoolBudgetExceeded", "raise maxConnections"),
        cond("Progressing", "False", "PoolBudgetExceeded"),
        cond("Degraded", "True", "PoolBudgetExceeded", "raise maxConnections")]}), "Degraded", "raise"),
    ("ready", resource(2, {"observedGeneration": 2, "conditions": [
        READY, cond("Progressing", "False", "Complete"), cond("Degraded", "False", "AsExpected")]}),
     "Healthy", "1/1 replicas ready"),
    ("ready, newer observedGeneration", resource(2, {"observedGeneration": 3, "conditions": [READY]}),
     "Healthy", ""),
    ("rolling out", resource(2, {"observedGeneration": 2, "conditions": [
        cond("Ready", "False", "RollingOut", "0/1 replicas ready"),
        cond("Progressing", "True", "RollingOut", "0/1 replicas ready, 1 updated")]}),
     "Progressing", "updated"),
    ("OAuthClient waits for its AuthServer", resource(1, {"observedGeneration": 1, "conditions": [
        cond("Ready", "False", "AuthServerNotReady", "AuthServer platform/auth is not Ready yet")]}),
     "Progressing", "not Ready yet"),
    ("OAuthClient not allowed", resource(1, {"observedGeneration": 1, "conditions": [
        cond("Ready", "False", "NotAllowed", "namespace team-c may not register")]}), "Degraded", "team-c"),
    ("ready unknown", resource(1, {"observedGeneration": 1, "conditions": [cond("Ready", "Unknown")]}),
     "Progressing", ""),
    ("no conditions yet", resource(1, {"observedGeneration": 1}), "Progressing", "Ready condition"),
]  # fmt: skip


@pytest.mark.parametrize(("obj", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_argocd_health_decision_table(obj: dict[str, Any], status: str, message: str) -> None:
    got_status, got_message = run_health(obj)
    assert got_status == status
    assert message in got_message


def test_every_decision_row_is_tested() -> None:
    """The Lua documents its rows as `--   N. ...`; every row has a case above."""
    rows = [line for line in LUA_FILE.read_text().splitlines() if line.startswith("--   ") and ". " in line]
    assert len(rows) == 8
    outcomes = {case[2] for case in CASES}
    assert outcomes == {"Healthy", "Progressing", "Degraded"}


def test_argocd_configmap_snippet_installs_the_check_for_both_kinds() -> None:
    data = yaml.safe_load(SNIPPET.read_text())["data"]
    lua = LUA_FILE.read_text()
    assert data == {
        "resource.customizations.health.authyard.dev_AuthServer": lua,
        "resource.customizations.health.authyard.dev_OAuthClient": lua,
    }


def test_health_docs_cover_argocd_and_flux() -> None:
    readme = (CHART / "health" / "README.md").read_text()
    assert "resource.customizations.health.authyard.dev_AuthServer" in readme
    assert "kstatus" in readme and "observedGeneration" in readme
