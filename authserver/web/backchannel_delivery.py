"""Back-channel logout deliveries (OpenID Connect Back-Channel Logout 1.0 §2.5): the session-end listener
that POSTs logout tokens to relying parties, off the sign-out's path.

``session_ended`` only puts the ended session on a bounded in-process queue and returns; one task per worker
takes sessions off it and starts a delivery per client the session signed into, at most ``concurrency`` at
once. A delivery looks the client up (it may have registered no ``backchannel_logout_uri``: nothing is sent),
POSTs ``logout_token=...`` as a form without following redirects, and is judged and retried as
``protocol/backchannel_logout.py`` decides.

Limits, on purpose: the queue lives in the worker's memory. A full queue drops the session (counted, logged);
what a worker holds when it is killed is lost; on a graceful stop its pending deliveries get
``SHUTDOWN_GRACE_SECONDS`` to finish and the rest are dropped. An RP whose logout was lost keeps its session
until that session's own expiry, as if it had no back-channel logout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import certifi
import httpx

from authserver.observability import metrics
from authserver.protocol.backchannel_logout import RetryPolicy, Verdict, judge, logout_token
from authserver.protocol.client_authentication import ClientLookup
from authserver.protocol.session_end import EndedSession
from authserver.protocol.store import StoreUnavailable
from authserver.protocol.tokens import TokenMinter

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # ended sessions per worker waiting for their deliveries to start
CONCURRENCY = 32  # deliveries under way at once per worker, their retry waits included
REQUEST_TIMEOUT_SECONDS = 5.0  # each POST, connecting included: an RP that hangs is retried, not waited on
# Within the 5 s the operator's pods leave between the server's own graceful shutdown and SIGKILL.
SHUTDOWN_GRACE_SECONDS = 3.0


def trust(ca_file: Path | None) -> ssl.SSLContext:
    """The public CAs (certifi's, as httpx trusts by default) and, when given, the CAs of ``ca_file``."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class BackchannelLogout:
    """The ``SessionEndListener`` that sends back-channel logout tokens (``protocol.session_end``)."""

    def __init__(
        self,
        lookup: ClientLookup,
        minter: TokenMinter,
        *,
        policy: RetryPolicy | None = None,
        queue_size: int = QUEUE_SIZE,
        concurrency: int = CONCURRENCY,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_file: Path | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._lookup = lookup
        self._minter = minter
        self._policy = policy or RetryPolicy()
        self._queue: asyncio.Queue[EndedSession] = asyncio.Queue(queue_size)
        self._slots = asyncio.Semaphore(concurrency)
        self._sleep, self._clock, self._jitter = sleep, clock, jitter
        # §2.5: never follow a redirect; the RP must not rely on it, and it would send the token elsewhere.
        self._http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            verify=trust(ca_file),
        )
        self._consumer: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._closed = False

    def session_ended(self, ended: EndedSession) -> None:
        """Queue ``ended``'s deliveries and return at once (never raises, never waits)."""
        if self._closed:
            self._drop(ended, "the worker is stopping")
            return
        try:
            self._queue.put_nowait(ended)
        except asyncio.QueueFull:
            self._drop(ended, "the queue is full")
            return
        metrics.BACKCHANNEL_LOGOUT_QUEUE.set(self._queue.qsize())

    def start(self) -> None:
        """Start taking ended sessions off the queue (in the worker's running loop)."""
        if self._consumer is None:
            self._consumer = asyncio.create_task(self._consume())

    @property
    def stopping(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Ended sessions queued plus deliveries under way."""
        return self._queue.qsize() + len(self._deliveries)

    async def close(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Give what is queued or under way ``grace`` seconds to finish, then drop the rest."""
        self._closed = True
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self._drained(), grace)
            except TimeoutError:
                pass
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        unfinished = list(self._deliveries)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.gather(*unfinished, return_exceptions=True)
            metrics.BACKCHANNEL_LOGOUT_DELIVERIES.labels("dropped").inc(len(unfinished))
            log.warning("%d back-channel logout deliveries dropped: the worker stopped", len(unfinished))
        while not self._queue.empty():
            self._drop(self._queue.get_nowait(), "the worker stopped first")
        metrics.BACKCHANNEL_LOGOUT_QUEUE.set(0)
        await self._http.aclose()

    async def _drained(self) -> None:
        await self._queue.join()
        while self._deliveries:
            await asyncio.wait(set(self._deliveries))

    def _drop(self, ended: EndedSession, why: str) -> None:
        # Counted per client of the session: whether each registered a URI is not looked up for a drop.
        metrics.BACKCHANNEL_LOGOUT_DELIVERIES.labels("dropped").inc(len(ended.client_ids))
        log.warning(
            "back-channel logout of a session for %d client(s) dropped: %s", len(ended.client_ids), why
        )

    async def _consume(self) -> None:
        while True:
            ended = await self._queue.get()
            metrics.BACKCHANNEL_LOGOUT_QUEUE.set(self._queue.qsize())
            client_ids = list(dict.fromkeys(ended.client_ids))
            try:
                while client_ids:
                    await self._slots.acquire()
                    task = asyncio.create_task(self._deliver(client_ids.pop(0), ended))
                    self._deliveries.add(task)
                    task.add_done_callback(self._delivery_done)
            except asyncio.CancelledError:  # stopped while waiting for a free slot: the rest are lost
                metrics.BACKCHANNEL_LOGOUT_DELIVERIES.labels("dropped").inc(len(client_ids))
                raise
            finally:
                self._queue.task_done()

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._slots.release()

    async def _deliver(self, client_id: str, ended: EndedSession) -> None:
        try:
            await self._attempts(client_id, ended)
        except Exception as error:  # a delivery's own bug must not go unseen, nor stop the others
            metrics.BACKCHANNEL_LOGOUT_DELIVERIES.labels("gave_up").inc()
            log.error("back-channel logout to client %s failed: %s", client_id, type(error).__name__)

    async def _attempts(self, client_id: str, ended: EndedSession) -> None:
        """Attempts until delivered, given up, or out of attempts or time (``RetryPolicy``)."""
        started = self._clock()
        attempt = 1
        while True:
            verdict, what = await self._attempt(client_id, ended)
            if verdict is None:
                return  # the client registered no back-channel logout URI (or is gone): nothing to send
            if verdict is Verdict.DELIVERED:
                metrics.BACKCHANNEL_LOGOUT_DELIVERIES.labels("delivered").inc()
                return
            delay = None
            if verdict is Verdict.RETRY:
                attempt += 1
                delay = self._policy.delay_before(attempt, self._clock() - started, self._jitter())
            if delay is None:
                metrics.BACKCHANNEL_LOGOUT_DELIVERIES.labels("gave_up").inc()
                log.warning("back-channel logout to client %s given up: %s", client_id, what)
                return
            metrics.BACKCHANNEL_LOGOUT_DELIVERIES.labels("retried").inc()
            await self._sleep(delay)

    async def _attempt(self, client_id: str, ended: EndedSession) -> tuple[Verdict | None, str]:
        """One POST of a fresh logout token; the verdict and, for the log, what happened (never the token)."""
        try:
            client = await self._lookup(client_id)
        except StoreUnavailable:
            return Verdict.RETRY, "the database was unavailable"
        if client is None or client.backchannel_logout_uri is None:
            return None, ""
        token = logout_token(self._minter, client, subject=ended.user_id, session_id=ended.session_id)
        try:
            # Streamed and closed unread: the RP's answer is its status; its body could be anything.
            async with self._http.stream(
                "POST", client.backchannel_logout_uri, data={"logout_token": token}
            ) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return judge(None), "timed out"
        except httpx.HTTPError as error:  # refused, reset, DNS, TLS
            return judge(None), f"not reached ({type(error).__name__})"
        return judge(status), f"HTTP {status}"
