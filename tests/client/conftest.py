"""The client kit's fixtures: a real ``authserver serve --workers 2`` per module, and a verifier of its
access tokens for the :data:`API` audience."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from authyard_client import TokenVerifier
from harness.authserver import AuthServer
from tests.conftest import server_process
from tests.support.client_kit import API


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[AuthServer]:
    # The kit touches no storage: one database is enough.
    with server_process("sqlite", request) as started:
        yield started


@pytest.fixture
async def verifier(server: AuthServer) -> AsyncIterator[TokenVerifier]:
    checker = TokenVerifier(server.issuer, API)
    yield checker
    await checker.aclose()
