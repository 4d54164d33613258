"""Every module of the certification plans the conformance workflow runs (tests/conformance/plans.py) has a
test of its own name somewhere under tests/: ``oidcc-max-age-1`` → ``test_oidcc_max_age_1`` or
``test_oidcc_max_age_1_<suffix>``. The suite cannot run here; these tests are what fails on this machine
when a module's behaviour breaks, so a renamed or deleted one must not go unnoticed.

A test counts for the longest module name it starts with: ``test_oidcc_server_client_secret_post`` is
oidcc-server-client-secret-post's, not oidcc-server's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.conformance.plans import BASIC_MODULES, CONFIG_MODULES, PLANS

TESTS = Path(__file__).resolve().parents[1]


def expected_name(module: str) -> str:
    return "test_" + module.replace("-", "_")


def functions_under(root: Path) -> dict[str, list[str]]:
    """Each ``test_*`` function (sync or async, top level or in a class) of each ``test_*.py`` under
    ``root``, parsed without importing: name → the files defining it."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                found.setdefault(node.name, []).append(str(path.relative_to(root.parent)))
    return found


def coverage(modules: Iterable[str], functions: Iterable[str]) -> dict[str, list[str]]:
    """module → the test functions counting for it (the longest module name each starts with)."""
    modules = list(modules)
    covered: dict[str, list[str]] = {module: [] for module in modules}
    for function in functions:
        owners = [
            module
            for module in modules
            if function == expected_name(module) or function.startswith(expected_name(module) + "_")
        ]
        if owners:
            covered[max(owners, key=len)].append(function)
    return covered


def test_the_plans_list_the_modules_the_workflow_runs() -> None:
    assert len(BASIC_MODULES) == len(set(BASIC_MODULES)) == 38
    assert "oidcc-server-client-secret-post" in BASIC_MODULES
    assert CONFIG_MODULES == ("oidcc-discovery-endpoint-verification",)
    workflow = (TESTS.parent / ".github" / "workflows" / "conformance.yml").read_text()
    for plan in PLANS:
        assert plan in workflow, plan


def test_every_plan_module_has_a_test_named_after_it() -> None:
    functions = functions_under(TESTS)
    missing = {
        plan: [module for module, tests in coverage(modules, functions).items() if not tests]
        for plan, modules in PLANS.items()
    }
    missing = {plan: modules for plan, modules in missing.items() if modules}
    assert not missing, "plan modules without a test named test_<module with - as _>[_...]: " + "; ".join(
        f"{plan}: {', '.join(modules)}" for plan, modules in missing.items()
    )


def test_a_renamed_test_leaves_its_module_uncovered(tmp_path: Path) -> None:
    """The check itself: a test renamed away from its module, or only a longer module's test, covers
    nothing; a suffix still counts."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "def test_oidcc_max_age_1_after_two_seconds():\n    pass\n\n"
        "class TestX:\n    async def test_oidcc_server_client_secret_post(self):\n        pass\n\n"
        "def test_oidcc_max_age_one():\n    pass\n"
    )
    modules = ["oidcc-max-age-1", "oidcc-max-age-10000", "oidcc-server", "oidcc-server-client-secret-post"]
    covered = coverage(modules, functions_under(tests))
    assert covered == {
        "oidcc-max-age-1": ["test_oidcc_max_age_1_after_two_seconds"],
        "oidcc-max-age-10000": [],
        "oidcc-server": [],
        "oidcc-server-client-secret-post": ["test_oidcc_server_client_secret_post"],
    }
