"""What .github/workflows/conformance.yml promises, checked in its text: both plans with their variants, the
suite pinned by commit, the server started the README's way behind TLS for the hostname the suite's
container is routed to, the configuration made by conformance/provision.sh, the results uploaded whatever
happened. (actionlint and the action pins: every workflow, in tests/packaging/test_workflows.py.)
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "conformance.yml"
BASIC_PLAN = (
    "oidcc-basic-certification-test-plan[server_metadata=discovery][client_registration=static_client]"
)
CONFIG_PLAN = "oidcc-config-certification-test-plan"
LOGOUT_PLAN = (
    "oidcc-rp-initiated-logout-certification-test-plan[response_type=code][client_registration=static_client]"
)
BACKCHANNEL_PLAN = (
    "oidcc-backchannel-rp-initiated-logout-certification-test-plan"
    "[response_type=code][client_registration=static_client]"
)


def _workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps() -> list[dict[str, Any]]:
    (job,) = _workflow()["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _step(text: str) -> tuple[int, dict[str, Any]]:
    found = [(i, step) for i, step in enumerate(_steps()) if text in step.get("run", "")]
    assert len(found) == 1, f"expected one step running {text!r}, found {len(found)}"
    return found[0]


def test_the_suite_is_pinned_by_commit_and_checked_out_at_it() -> None:
    env = _workflow()["env"]
    assert re.fullmatch(r"[0-9a-f]{40}", env["SUITE_COMMIT"])
    assert env["SUITE_REPOSITORY"] == "https://github.com/openid-certification/conformance-suite.git"
    _, fetch = _step('fetch -q --depth 1 "$SUITE_REPOSITORY" "$SUITE_COMMIT"')
    assert 'test "$(git -C conformance-suite rev-parse HEAD)" = "$SUITE_COMMIT"' in fetch["run"]


def test_both_plans_run_with_their_variants_and_fail_the_job() -> None:
    _, run = _step("scripts/run-test-plan.py")
    command = run["run"].replace("\\\n", " ").splitlines()[-1]
    words = shlex.split(command)
    arguments = words[words.index("scripts/run-test-plan.py") + 1 :]
    options = {word for word in arguments if word.startswith("--")}
    assert options == {"--verbose", "--export-dir", "--expected-skips-file"}, "no failure is expected away"
    positional = [word for word in arguments if not word.startswith("-") and not word.startswith("..")]
    config = "$RUNNER_TEMP/conformance/config.json"
    backchannel_config = "$RUNNER_TEMP/conformance/config-backchannel.json"  # its own client
    assert positional == [
        BASIC_PLAN, config, CONFIG_PLAN, config, LOGOUT_PLAN, config, BACKCHANNEL_PLAN, backchannel_config
    ]  # fmt: skip
    assert "continue-on-error" not in run  # its exit status is the job's


def test_expected_skips_are_modules_that_do_not_apply_each_with_a_reason() -> None:
    skips = json.loads((ROOT / "conformance" / "expected-skips.json").read_text())
    assert skips
    for skip in skips:
        assert set(skip) == {"test-name", "variant", "configuration-filename", "comment"}
        assert skip["comment"].startswith("Not applicable: "), skip


def test_the_server_starts_the_readme_way_behind_tls_and_is_provisioned_after() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "authserver serve [--host 127.0.0.1] [--port 8080]" in readme
    env = _workflow()["env"]
    serve_index, serve = _step("authserver serve --host 127.0.0.1 --port 8080")
    assert "AUTHSERVER_DATABASE_URL" not in serve["run"] and "AUTHSERVER_DATABASE_URL" not in env  # SQLite
    assert env["AUTHSERVER_ISSUER"] == f"https://{env['OP_HOST']}:9443"
    tls_index, tls = _step("conformance/tls.sh")
    assert "AUTHYARD_TLS_BIND=0.0.0.0:9443" in tls["run"] and "AUTHYARD_BACKEND=127.0.0.1:8080" in tls["run"]
    assert "haproxy -D -f conformance/haproxy.cfg" in tls["run"]
    assert 'export AUTHSERVER_BACKCHANNEL_LOGOUT_CA_FILE="$RUNNER_TEMP/suite-cert.pem"' in serve["run"]
    assert serve["run"].index("AUTHSERVER_BACKCHANNEL_LOGOUT_CA_FILE") < serve["run"].index(
        "authserver serve"
    )
    provision_index, provision = _step("conformance/provision.sh")
    assert provision["working-directory"] == "authyard-data" and "cd authyard-data" in serve["run"]
    run_index, _ = _step("scripts/run-test-plan.py")
    assert serve_index < tls_index < provision_index < run_index


def test_the_suites_container_is_routed_to_the_op_hostname() -> None:
    override = yaml.safe_load((ROOT / "conformance" / "compose.override.yml").read_text())
    host = _workflow()["env"]["OP_HOST"]
    assert override["services"]["server"]["extra_hosts"] == [f"{host}:host-gateway"]
    _, start = _step("docker compose -f docker-compose.yml -f ../conformance/compose.override.yml up")
    assert start["working-directory"] == "conformance-suite"


def test_results_and_logs_are_uploaded_whatever_happened() -> None:
    steps = _steps()
    (upload,) = [step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "conformance-results/"
    _, run = _step("scripts/run-test-plan.py")
    assert "--export-dir ../conformance-results" in run["run"]
    logs_index, logs = _step("docker compose logs --no-color server")
    assert logs["if"] == "always()" and "authserver.log" in logs["run"]
    assert logs_index < steps.index(upload)
