"""py-spy on a running single-worker server: sampled stacks during a wrk run, summarised as top frames.

py-spy is never installed into the project's venv: an existing ``py-spy`` on PATH is used, else it is
installed from PyPI into a throwaway target directory (``uv pip install --target`` or ``pip --target``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

PYSPY_DIR = Path(tempfile.gettempdir()) / "authyard-bench-pyspy"
PYSPY_VERSION = "0.4.3"


def find_or_install_pyspy() -> str | None:
    """A py-spy binary, or None (with the reason on stderr) when it cannot be had."""
    for candidate in (shutil.which("py-spy"), str(PYSPY_DIR / "bin" / "py-spy")):
        if candidate and Path(candidate).exists():
            return candidate
    attempts = []
    if shutil.which("uv"):
        attempts.append(["uv", "pip", "install", "--quiet", "--target", str(PYSPY_DIR)])
    for python in ("python3", sys.executable):
        attempts.append([python, "-m", "pip", "install", "--quiet", "--target", str(PYSPY_DIR)])
    for command in attempts:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            result = subprocess.run(  # noqa: S603 - installer with fixed arguments
                [*command, f"py-spy=={PYSPY_VERSION}"], capture_output=True, text=True, timeout=300
            )
            if result.returncode == 0 and (PYSPY_DIR / "bin" / "py-spy").exists():
                return str(PYSPY_DIR / "bin" / "py-spy")
    print("py-spy could not be installed; the profile is skipped", file=sys.stderr)
    return None


def start_recording(pyspy: str, pid: int, seconds: int, folded: Path) -> subprocess.Popen[str]:
    """Sample ``pid`` for ``seconds`` at 250 Hz without pausing it; collapsed stacks to ``folded``."""
    command = [
        pyspy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "250",
        "--nonblocking",
        "--format",
        "raw",
        "--nolineno",
        "--output",
        str(folded),
    ]
    return subprocess.Popen(  # noqa: S603 - py-spy with arguments built here
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )


def _short(frame: str) -> str:
    """``function (path/to/file.py)`` with the path cut to the package part."""
    name, _, location = frame.partition(" (")
    location = location.rstrip(")")
    for marker in ("site-packages/", "/lib/python3.", "/work/main/"):
        if marker in location:
            location = location.split(marker, 1)[1]
            if marker == "/lib/python3.":
                location = "stdlib:" + location.split("/", 1)[-1]
            break
    return f"{name} ({location})"


# Leaf frames of threads parked on a queue or lock: py-spy's non-blocking mode does not always see them as
# idle (aiosqlite keeps one such thread per connection, the argon2 pool two more).
_PARKED_LEAVES = (
    "_connection_worker_thread (aiosqlite/",
    "_worker (stdlib:concurrent/futures/thread.py)",
    "wait (stdlib:threading.py)",
    "Condition.wait (stdlib:threading.py)",
)


def summarise(folded: Path, title: str, top: int = 30) -> str:
    """Self and inclusive sample shares per frame, and the authserver frames alone."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = parked = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        if frames[-1].startswith(_PARKED_LEAVES):
            parked += count
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return f"# {title}\n\nno samples\n"

    def table(counter: Counter[str], keep: object = None) -> list[str]:
        rows = [
            f"{100 * count / total:6.2f}%  {frame}"
            for frame, count in counter.most_common()
            if keep is None or keep(frame)  # type: ignore[operator]
        ]
        return rows[:top]

    lines = [
        f"# {title}",
        f"{total} samples (py-spy, 250 Hz, non-blocking, idle excluded; {parked} more of threads parked "
        "on a queue, left out)",
        "",
    ]
    lines += ["## Self time (the frame itself is on CPU)", *table(self_counts), ""]
    lines += ["## Inclusive time (the frame is on the stack)", *table(inclusive), ""]
    lines += [
        "## Inclusive time, authserver frames only",
        *table(inclusive, lambda frame: "authserver/" in frame),
        "",
    ]
    return "\n".join(lines)
