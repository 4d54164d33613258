"""Client usage end to end: the operator (a child process, its usage pass every second) against the emulated
API, an AuthServer served by a real ``authserver serve`` on PostgreSQL flushing its counts every 200 ms.
Tokens got with an OAuthClient's credentials show in its status.usage, a wrong secret as its lastError; the
Unused condition follows the last token; a pass that finds nothing new writes no status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from harness.kube_emulator import AuthyardEmulator
from harness.operator import OPERATOR_SCRIPT, TEAM, OperatorProcess, operator_process_env
from harness.polling import wait_for
from harness.postgres import PostgresCluster
from tests.operator.kubeapi import KubeApi
from tests.operator.stack import Stack, clients_path, oauthclient, running_stack, token

pytestmark = pytest.mark.postgres


@pytest.fixture
async def stack(
    operator_process: Any,
    emulator: AuthyardEmulator,
    kube: KubeApi,
    postgres_cluster: PostgresCluster,
    tmp_path: Any,
) -> AsyncIterator[Stack]:
    async def start_operator(issuer: str) -> OperatorProcess:
        # The OAuthClients' own resync is slow here: every status write in the test is the usage pass's.
        env = operator_process_env(issuer, AUTHYARD_USAGE_INTERVAL="1s", AUTHYARD_CLIENT_RESYNC_INTERVAL="1h")
        process: OperatorProcess = await operator_process(OPERATOR_SCRIPT, env=env)
        return process

    server_env = {"AUTHSERVER_USAGE_FLUSH_INTERVAL": "200ms"}
    async with running_stack(
        emulator, kube, postgres_cluster, tmp_path, start_operator, server_env=server_env
    ) as running:
        yield running


def _condition(stack: Stack, name: str, kind: str) -> dict[str, Any]:
    conditions = stack.client_status(name).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def _status_writes(emulator: AuthyardEmulator, name: str) -> int:
    path = f"/namespaces/{TEAM}/oauthclients/{name}/status"
    return sum(
        1
        for request in emulator
        if str(request.method.value).upper() == "PATCH" and request.url.path.endswith(path)
    )


async def _created(stack: Stack, *names: str, **spec: Any) -> None:
    for name in names:
        await stack.kube.post(clients_path(), oauthclient(name, **spec))
    for name in names:
        await wait_for(lambda n=name: stack.is_ready(n), timeout=30, message=f"{name} not Ready")


async def test_tokens_and_errors_reach_the_status_and_an_unchanged_pass_writes_nothing(stack: Stack) -> None:
    # Every request kept: the status writes are counted from the log, which otherwise keeps only the last 50.
    stack.emulator.request_log_size = None
    await _created(stack, "orders", "idle")
    credentials = stack.secret("orders-oauth")
    for _ in range(3):
        assert (await token(credentials)).status_code == 200
    assert (await token(credentials, secret="not-the-secret-" * 3)).status_code == 401

    def counted() -> dict[str, Any] | None:
        usage = stack.client_status("orders").get("usage") or {}
        return usage if usage.get("tokensLastHour") == 3 and usage.get("lastError") else None

    usage = await wait_for(counted, timeout=30, message=lambda: str(stack.client_status("orders")))
    assert usage["tokensLastDay"] == 3 and usage["lastError"]["code"] == "invalid_client"
    last = datetime.fromisoformat(usage["lastTokenAt"].replace("Z", "+00:00"))
    assert datetime.now(UTC) - timedelta(minutes=2) < last <= datetime.now(UTC)
    used = _condition(stack, "orders", "Unused")
    assert (used["status"], used["reason"]) == ("False", "Used")
    assert _condition(stack, "orders", "Ready")["status"] == "True"  # the usage pass kept Ready

    await wait_for(lambda: _condition(stack, "idle", "Unused").get("reason") == "NotUsedYet", timeout=30)
    assert stack.client_status("idle")["usage"] == {"tokensLastHour": 0, "tokensLastDay": 0}
    # Nothing new for "idle": further passes (each one reads the admin API) write nothing.
    writes = _status_writes(stack.emulator, "idle")
    assert writes >= 1  # the pass that wrote its usage
    passes = stack.server.requests_by_worker("/admin/usage")
    await wait_for(
        lambda: sum(stack.server.requests_by_worker("/admin/usage").values()) >= sum(passes.values()) + 3,
        timeout=30,
        message="the usage pass did not run three more times",
    )
    assert _status_writes(stack.emulator, "idle") == writes


async def test_a_client_without_a_token_for_its_days_is_unused(stack: Stack) -> None:
    await _created(stack, "stale", unusedAfterDays=30)
    # Its last token, as a flush 40 days ago would have recorded it.
    long_ago = datetime.now(UTC) - timedelta(days=40)
    engine = create_async_engine(stack.server.env["AUTHSERVER_DATABASE_URL"])
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO client_last_use (client_id, last_token_at) VALUES (:client_id, :at)"),
                {"client_id": f"{TEAM}.stale", "at": long_ago},
            )
    finally:
        await engine.dispose()
    unused = await wait_for(
        lambda: (c := _condition(stack, "stale", "Unused")).get("status") == "True" and c,
        timeout=30,
        message=lambda: str(stack.client_status("stale")),
    )
    assert unused["reason"] == "NoRecentToken" and "more than 30 days ago" in unused["message"]
    assert long_ago.strftime("%Y-%m-%dT%H:%M") in unused["message"]

    # A token now: Used again.
    assert (await token(stack.secret("stale-oauth"))).status_code == 200
    await wait_for(lambda: _condition(stack, "stale", "Unused").get("reason") == "Used", timeout=30)
