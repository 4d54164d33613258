"""The kopf operator module: ``kopf run -m authyard_operator.main`` (the CLI does this, with leadership).

Importing it registers every handler.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from authyard_operator.constants import GROUP
from authyard_operator.handlers import authserver  # noqa: F401 - registers the handlers
from authyard_operator.kube.client import Kube
from authyard_operator.locks import ObjectLocks
from authyard_operator.settings import OperatorSettings


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # The status schema is fully typed (no preserve-unknown-fields), so kopf keeps its bookkeeping in
    # annotations; status holds only what users read.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events come from the reconcile's own decisions; kopf's log lines become events only when they warn.
    settings.posting.level = logging.WARNING
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    memo.settings = OperatorSettings()
    memo.kube = await Kube.connect()
    memo.locks = ObjectLocks()


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    kube = getattr(memo, "kube", None)
    if kube is not None:
        await kube.close()
