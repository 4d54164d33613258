"""Who may import whom among the top-level packages: the images carry only ``authserver`` and the operator,
so neither may import the harness, the benchmarks or the tests; the benchmarks may use the harness but never
the test suite; the harness serves both and imports neither."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# (the package's directory, the top-level packages it must not import)
FORBIDDEN = [
    ("authserver", {"harness", "bench", "tests"}),
    ("operator/authyard_operator", {"harness", "bench", "tests"}),
    ("bench", {"tests"}),
    ("harness", {"bench", "tests"}),
    # The client kit goes into applications: nothing of the server, the operator or the repository's tools.
    ("authyard_client", {"authserver", "authyard_operator", "authyard_values", "harness", "bench", "tests"}),
]


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports; relative ones stay inside it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(("package", "forbidden"), FORBIDDEN, ids=[package for package, _ in FORBIDDEN])
def test_a_package_imports_none_of_the_packages_it_must_not(package: str, forbidden: set[str]) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}"
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden)
        for path in modules
        if imported_packages(path) & forbidden
    }
    assert not offending, offending


def test_the_scan_sees_every_kind_of_import(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import tests.support\nfrom harness.postgres import PostgresCluster\nfrom . import sibling\n"
        "def later():\n    import bench.wrk\n"
    )
    assert imported_packages(module) == {"tests", "harness", "bench"}


def test_the_client_kit_loads_without_the_server_or_a_web_framework() -> None:
    """An application imports the token source and the verifier with httpx and PyJWT only; Starlette is
    needed by authyard_client.resource_server alone."""
    probe = (
        "import sys, authyard_client; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'authserver', 'authyard_operator', 'authyard_values', 'starlette', 'fastapi', 'sqlalchemy'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    ).stdout
    assert loaded.strip() == "[]"
