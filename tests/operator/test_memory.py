"""The operator's memory: kubernetes_asyncio's generated client is loaded lazily, and still works in full.

Each check runs in a fresh interpreter: this test session has long imported the eager package (conftest).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from authyard_operator.lazy_imports import split_imports

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_operator_loads_no_generated_apis_and_only_the_models_kopf_names() -> None:
    facts = run_python(
        """
        import json, re, sys
        import authyard_operator.cli  # every handler registered, kopf imported
        rss = int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
        print(json.dumps({
            "models": sorted(m for m in sys.modules if m.startswith("kubernetes_asyncio.client.models.")),
            "apis": sorted(m for m in sys.modules if m.startswith("kubernetes_asyncio.client.api.")),
            "rss_mib": rss,
        }))
        """
    )
    assert facts["apis"] == []
    # kopf's isinstance checks: V1ObjectMeta and V1OwnerReference (and what they import).
    assert len(facts["models"]) <= 5, facts["models"]
    # The eager package alone is ~50 MiB more than this whole import (measured 132 -> 84 MiB here).
    assert facts["rss_mib"] < 110


def test_the_lazy_package_still_offers_every_name() -> None:
    facts = run_python(
        """
        import asyncio, json
        import authyard_operator  # installs the finder
        import kubernetes_asyncio.client as client
        import kubernetes_asyncio.client.models as models
        from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api, V1ObjectMeta
        from kubernetes_asyncio.client.exceptions import ApiException

        class Response:
            data = '{"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"containers": []}}'

        async def deserialize():
            async with ApiClient(Configuration()) as api:
                return api.deserialize(Response(), "V1Pod")  # getattr(models, "V1Pod")

        pod = asyncio.run(deserialize())
        try:
            client.NoSuchThing
            missing = False
        except AttributeError:
            missing = True
        namespace = {}
        exec("from kubernetes_asyncio.client import *", namespace)
        print(json.dumps({
            "lazy": type(client.__spec__.loader).__name__,
            "version": client.__version__,
            "all": len(client.__all__),
            "star": sum(name in namespace for name in client.__all__),
            "in_dir": "V1Deployment" in dir(client) and "V1Deployment" in dir(models),
            "same_class": client.V1ObjectMeta is V1ObjectMeta is models.V1ObjectMeta,
            "api": CoreV1Api.__module__,
            "exception": client.ApiException is ApiException,
            "rest": client.rest.__name__,
            "pod": [type(pod).__name__, pod.metadata.name, pod.metadata.labels],
            "missing": missing,
        }))
        """
    )
    assert facts["lazy"] == "_LazyPackageLoader"
    assert facts["version"]
    assert facts["all"] > 800 and facts["star"] == facts["all"]
    assert facts["in_dir"] and facts["same_class"] and facts["exception"] and facts["missing"]
    assert facts["api"] == "kubernetes_asyncio.client.api.core_v1_api"
    assert facts["rest"] == "kubernetes_asyncio.client.rest"
    assert facts["pod"] == ["V1Pod", "web", {"app": "web"}]


def test_split_imports_defers_only_the_packages_own_from_imports() -> None:
    tree = ast.parse(
        textwrap.dedent(
            """
            from __future__ import absolute_import
            __version__ = "1"
            from pkg.models.v1_pod import V1Pod
            from pkg.api_client import ApiClient as Client
            from other.thing import Helper
            import pkg.rest
            """
        )
    )
    eager, lazy = split_imports("pkg", tree)
    assert lazy == {"V1Pod": ("pkg.models.v1_pod", "V1Pod"), "Client": ("pkg.api_client", "ApiClient")}
    kept = ast.unparse(eager)
    assert "__version__" in kept and "other.thing" in kept and "import pkg.rest" in kept
    assert "V1Pod" not in kept and "ApiClient" not in kept
