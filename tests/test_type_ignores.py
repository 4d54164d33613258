"""Every ``type: ignore`` in the product's code names the error it silences and says why, on its own line.

mypy (scripts/test.sh) enforces the error code (``ignore-without-code``) and that no ignore outlives its
error (``warn_unused_ignores``); the reason is what this test adds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("authserver", "operator/authyard_operator", "authyard_client")  # what [tool.mypy] files lists
_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<after>.*)$")
_REASON = re.compile(r"\s+#\s*\w")


def unexplained(line: str) -> bool:
    """True for a ``type: ignore`` without an error code or without a ``# reason`` after it."""
    match = _IGNORE.search(line)
    return match is not None and not (match["codes"] and _REASON.match(match["after"]))


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ("x = f()  # type: ignore", True),
        ("x = f()  # type: ignore  # why", True),
        ("x = f()  # type: ignore[arg-type]", True),
        ("x = f()  # type: ignore[arg-type]  #", True),
        ("x = f()  # type: ignore[arg-type]  # the library's stub is wrong", False),
        ("x = f()  # type: ignore[attr-defined,no-any-return]  # set by a metaclass", False),
        ("x = f()  # a plain comment", False),
    ],
)
def test_the_check_tells_explained_ignores_from_bare_ones(line: str, flagged: bool) -> None:
    assert unexplained(line) is flagged


def test_every_type_ignore_names_its_error_and_its_reason() -> None:
    files = sorted(path for folder in CHECKED for path in (ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {CHECKED}"
    bare = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if unexplained(line)
    ]
    assert not bare, "type: ignore without [error-code]  # reason:\n" + "\n".join(bare)
