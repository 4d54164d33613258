"""``bench/reported/`` holds exactly the run files the documentation cites: none missing, none uncited."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORTED = ROOT / "bench" / "reported"
# A cited run file, or a glob of them (``profile-<stamp>-*.txt``); it ends with a name character or ``*``.
CITATION = re.compile(r"bench/reported/[\w.*-]*[\w*]")
# Not documentation of this repository: environments, installed tools, local results.
SKIPPED_DIRECTORIES = {"node_modules", "tools", "demo-data", "results"}


def _markdown_files() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*.md")
        if not any(
            part.startswith(".") or part in SKIPPED_DIRECTORIES for part in path.relative_to(ROOT).parts[:-1]
        )
    ]


def _citations() -> dict[str, list[Path]]:
    """Each cited path or glob (relative to the repository) and the documents citing it."""
    cited: dict[str, list[Path]] = {}
    for document in _markdown_files():
        for citation in CITATION.findall(document.read_text(encoding="utf-8")):
            cited.setdefault(citation, []).append(document.relative_to(ROOT))
    return cited


def test_the_documents_are_found_and_cite_runs() -> None:
    documents = {path.relative_to(ROOT).as_posix() for path in _markdown_files()}
    assert {"README.md", "docs/performance.md", "bench/README.md"} <= documents
    assert any(by == [Path("docs/performance.md")] for by in _citations().values())


def test_every_cited_run_file_exists() -> None:
    missing = {
        citation: [str(path) for path in by]
        for citation, by in _citations().items()
        if not (sorted(ROOT.glob(citation)) if "*" in citation else (ROOT / citation).is_file())
    }
    assert not missing, f"cited but not in bench/reported/: {missing}"


def test_every_run_file_is_cited() -> None:
    kept = {path for path in REPORTED.iterdir() if path.is_file()}
    covered = {path for citation in _citations() for path in ROOT.glob(citation)}
    uncited = sorted(path.name for path in kept - covered)
    assert kept, "bench/reported/ is empty"
    assert not uncited, f"in bench/reported/ but cited by no document (delete them or cite them): {uncited}"
