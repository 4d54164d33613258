"""Schemathesis against the server's own OpenAPI document, every operation, the admin API included.

The server is a real ``authserver serve`` process (SQLite, rate limits off so that the fuzzer explores the
protocol rather than the limiter). Admin operations carry the admin bearer token, the OAuth endpoints a
registered client's Basic credentials, /userinfo a real access token, so that generated requests get past
authentication into the handlers. Positive and negative cases, a bounded number per operation.

Checks on every response: no 5xx (the only 503 allowed is readiness, which the document describes), the
status code is one the document lists for the operation, the content type and (where the document gives
one) the body schema conform, every JSON error is an RFC 6749 §5.2 object; finally the server's log holds
no traceback (no unhandled exception).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from authserver.config import Settings
from authserver.web.app import create_app
from harness.authserver import AuthServer, running_server
from tests.support.oauth import ADMIN_TOKEN, PASSWORD, admin_headers, authorize_code, basic, redeem_code
from tests.support.oauth_errors import JSON_ERRORS

MAX_EXAMPLES = 100
REQUEST_TIMEOUT_SECONDS = 10
FUZZ_CLIENT = "fuzz-confidential"
REDIRECT_URI = "https://app.example.com/cb"


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(
        tmp_path_factory.mktemp("openapi-fuzz"),
        AUTHSERVER_TOKEN_RATE_PER_IP="0",
        AUTHSERVER_TOKEN_RATE_PER_CLIENT="0",
    ) as server:
        yield server
        log = server.log_text()
        assert "Traceback" not in log, f"unhandled exception in the server:\n{server.log_tail(80)}"


@pytest.fixture(scope="module")
def credentials(api_server: AuthServer) -> dict[str, str]:
    """A confidential client's secret, and a user's access token with openid (walks the real pages)."""
    response = httpx.put(
        f"{api_server.base_url}/admin/clients/{FUZZ_CLIENT}",
        json={
            "name": "fuzz confidential",
            "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
            "scopes": ["openid", "profile", "email", "read"],
            "redirect_uris": [REDIRECT_URI],
        },
        headers=admin_headers(),
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    assert response.status_code in (200, 201), response.text
    secret = response.json()["client_secret"]
    username = "fuzz-user"
    api_server.create_user(username, PASSWORD, email="fuzz@example.com", name="Fuzz User")

    async def user_token() -> str:
        async with httpx.AsyncClient(base_url=api_server.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as http:
            code, verifier = await authorize_code(http, FUZZ_CLIENT, REDIRECT_URI, username)
            token = await redeem_code(http, code, verifier, REDIRECT_URI, headers=basic(FUZZ_CLIENT, secret))
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"])

    return {"secret": secret, "access_token": asyncio.run(user_token())}


@pytest.fixture(scope="module")
def api_schema(api_server: AuthServer) -> Any:
    return schemathesis.openapi.from_url(f"{api_server.base_url}/openapi.json")


def operation_labels() -> list[str]:
    """Every operation of the document the application builds (the served one is checked to match)."""
    app = create_app(Settings(issuer="http://127.0.0.1", database_url="sqlite+aiosqlite:///:memory:"))
    document = app.openapi()
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]


OPERATIONS = operation_labels()


def authorization_for(path: str, credentials: dict[str, str]) -> dict[str, str]:
    if path.startswith("/admin"):
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if path in ("/token", "/revoke", "/introspect"):
        return basic(FUZZ_CLIENT, credentials["secret"])
    if path == "/userinfo":
        return {"Authorization": f"Bearer {credentials['access_token']}"}
    return {}


def rfc_error_body(response: Any, case: Any) -> None:
    """Every JSON answer >= 400 is ``{"error": <known code>, "error_description"?: str}``."""
    if response.status_code < 400 or (case.path == "/readyz" and response.status_code == 503):
        return
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if case.path in ("/authorize", "/logout") and content_type.startswith("text/html"):
        return  # the authorization and end-session endpoints show their errors on a page (never redirected)
    assert content_type.startswith("application/json"), f"{response.status_code} as {content_type}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and body.get("error") in JSON_ERRORS, body
    assert isinstance(body.get("error_description", ""), str), body


def test_the_document_lists_every_route(api_schema: Any) -> None:
    served = sorted(
        f"{operation.ok().method.upper()} {operation.ok().path}"
        for operation in api_schema.get_all_operations()
    )
    assert served == sorted(OPERATIONS)
    assert any(label.startswith(("PUT /admin", "GET /admin")) for label in served)


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_conforms_and_never_fails(
    label: str, api_schema: Any, api_server: AuthServer, credentials: dict[str, str]
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def exercise(case: Any) -> None:
        headers = {**(case.headers or {}), **authorization_for(case.path, credentials)}
        response = case.call(
            base_url=api_server.base_url,
            headers=headers,
            timeout=REQUEST_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
        case.validate_response(
            response,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )
        rfc_error_body(response, case)

    exercise()
