"""Unit tests of the protocol layer: grants, endpoints and flow decisions over the in-memory store."""

from __future__ import annotations

import pytest

from tests.support.protocol_server import ProtocolServer


@pytest.fixture
def server() -> ProtocolServer:
    return ProtocolServer()
