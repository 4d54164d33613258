"""The kopf operator module: ``kopf run -m authyard_operator.main`` (the CLI does this, with leadership).

Importing it registers every handler.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import httpx
import kopf

from authyard_operator.admin_client import AdminClient
from authyard_operator.constants import GROUP
from authyard_operator.handlers import authserver, oauthclient, usage  # noqa: F401 - registers the handlers
from authyard_operator.kube import config as cluster_config
from authyard_operator.kube.client import Kube
from authyard_operator.kube.credentials import token_source
from authyard_operator.locks import ObjectLocks
from authyard_operator.reconcile.cluster_issuer import ClusterIssuer
from authyard_operator.reconcile.oauthclient import ClientReconciler
from authyard_operator.reconcile_slots import ReconcileSlots
from authyard_operator.settings import OperatorSettings


class _TransportFailureInOneLine(logging.Filter):
    """kopf logs a dropped connection on one of its own calls (a status patch cut mid-body, say) with a
    traceback, then retries. The line already names the error; a traceback would read as a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], aiohttp.ClientError | TimeoutError):
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("kopf.objects").addFilter(_TransportFailureInOneLine())


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
    # When the operator stops, kopf waits this long for each timer to finish the pass it is in, and only
    # then runs the cleanup below, which closes the clients those passes use (by default it waits a few
    # event-loop cycles, then leaves the timer running against closed clients). Within the chart's 30 s
    # termination grace period.
    settings.background.instant_exit_timeout = 15.0
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    memo.settings = OperatorSettings()
    memo.kube = await Kube.connect()
    memo.cluster_issuer = ClusterIssuer(memo.kube)  # one read per 10 minutes for every AuthServer
    memo.locks = ObjectLocks()
    memo.slots = ReconcileSlots()
    memo.http = httpx.AsyncClient(timeout=10.0)
    memo.admin = AdminClient(memo.http)
    memo.clients = ClientReconciler(memo.kube, memo.admin, memo.settings.admin_url_template)


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's own calls (watches, finalizers, status, events) use the configuration the operator's client
    uses: kopf's fallbacks would differ with whichever client libraries happen to be installed. Called again
    after a 401, so a rotated service-account token is read afresh."""
    config = cluster_config.load()
    source = token_source(config)
    return kopf.ConnectionInfo(
        server=config.server,
        ca_path=config.ca_file,
        ca_data=config.ca_pem,
        insecure=config.insecure,
        certificate_path=config.cert_file,
        certificate_data=config.cert_pem,
        private_key_path=config.key_file,
        private_key_data=config.key_pem,
        username=config.username,
        password=config.password,
        token=await source.token() if source else None,
        proxy_url=config.proxy,
        expiration=source.expires_at if source else None,
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """After every handler and timer has stopped (see ``instant_exit_timeout`` above)."""
    if getattr(memo, "kube", None) is not None:
        await memo.kube.close()
    if getattr(memo, "http", None) is not None:
        await memo.http.aclose()
