"""The operator's memory: it talks to Kubernetes through its own small client on httpx, so importing it loads
no generated Kubernetes client (some 1,500 models: about 50 MiB) and needs no import hook to avoid one.

The check runs in a fresh interpreter, as the operator's process starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_operator_loads_no_kubernetes_client_library() -> None:
    code = """
        import json, re, sys
        finders = [type(finder).__module__ for finder in sys.meta_path]
        import authyard_operator.cli, authyard_operator.main  # every handler registered, kopf imported
        rss = int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
        print(json.dumps({
            "clients": sorted(m for m in sys.modules if m.split(".")[0] in (
                "kubernetes", "kubernetes_asyncio", "lightkube", "pykube")),
            "new_finders": [type(f).__module__ for f in sys.meta_path if type(f).__module__ not in finders],
            "rss_mib": rss,
        }))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["clients"] == []
    assert facts["new_finders"] == []
    # About 74 MiB here; a generated client imported eagerly would add about 50.
    assert facts["rss_mib"] < 90, facts
