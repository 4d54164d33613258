"""The kopf operator module: ``kopf run -m authyard_operator.main`` (the CLI does this, with leadership).

Importing it registers every handler.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import kopf

from authyard_operator.admin_client import AdminClient
from authyard_operator.constants import GROUP
from authyard_operator.handlers import authserver, oauthclient  # noqa: F401 - registers the handlers
from authyard_operator.kube.client import Kube
from authyard_operator.locks import ObjectLocks
from authyard_operator.reconcile.oauthclient import ClientReconciler
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
    settings.queueing.error_delays = [1, 2, 5, 10, 30, 60]
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # A resync timer caught mid-reconcile by a deletion finishes first (its API calls are bounded), and
    # kopf re-checks whether it has exited every `cancellation_polling` seconds: 60 by default, which held
    # the deletion (finalizer and all) for a minute. One second instead.
    settings.background.cancellation_polling = 1.0
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    memo.settings = OperatorSettings()
    memo.kube = await Kube.connect()
    memo.locks = ObjectLocks()
    memo.http = httpx.AsyncClient(timeout=10.0)
    memo.admin = AdminClient(memo.http)
    memo.clients = ClientReconciler(memo.kube, memo.admin, memo.settings.admin_url_template)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    for resource in (getattr(memo, "kube", None), getattr(memo, "http", None)):
        if resource is not None:
            await (
                resource.close()
                if hasattr(resource, "close") and not hasattr(resource, "aclose")
                else resource.aclose()
            )
