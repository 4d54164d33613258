"""Discovery and JWKS as relying parties fetch them: HEAD on every GET endpoint (RFC 9110 §9.3.2), cache
lifetimes bounded by the signing-key rotation's publication lead, ETag revalidation (RFC 9110 §13.1.2)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authserver.crypto.keyset import write_document_atomically
from authserver.crypto.keyset_document import rotate
from authserver.web.app import create_app
from harness.authserver import AuthServer, running_server
from harness.polling import wait_for
from tests.conftest import make_settings
from tests.support.oauth import admin_headers, register

JWKS = "/.well-known/jwks.json"
DOCUMENTS = (
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
)
# Fast routes (documents, authorize, userinfo) and framework routes (health, admin API with a parameter).
GET_PATHS = (*DOCUMENTS, "/authorize", "/userinfo", "/healthz", "/readyz", "/admin/clients")
# The next signing key is published at least an hour (the shortest rotation interval) before it signs.
SHORTEST_PUBLICATION_LEAD_SECONDS = 3600


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(tmp_path_factory.mktemp("discovery-http")) as running:
        yield running


def _without_volatile(headers: httpx.Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in ("date", "x-request-id")}


async def test_oidcc_config_head_answers_every_get_endpoint_with_its_headers_and_no_body(
    server: AuthServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.issuer) as http:
        for path in GET_PATHS:
            headers = admin_headers() if path.startswith("/admin") else {}
            got = await http.get(path, headers=headers)
            head = await http.head(path, headers=headers)
            assert head.status_code == got.status_code, path
            assert head.content == b"", path
            assert _without_volatile(head.headers) == _without_volatile(got.headers), path
            assert int(head.headers["content-length"]) == len(got.content), path
        # A method the path does not serve is still refused; a POST-only path has no HEAD.
        assert (await http.head("/token")).status_code == 405


async def test_a_client_read_by_head_through_the_framework_has_no_body(app_client: httpx.AsyncClient) -> None:
    client_id, _ = await register(app_client)
    got = await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())
    head = await app_client.head(f"/admin/clients/{client_id}", headers=admin_headers())
    assert got.status_code == head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    missing = await app_client.head("/admin/clients/nobody-here", headers=admin_headers())
    assert missing.status_code == 404 and missing.content == b""
    metrics = (await app_client.get("/metrics")).text
    assert re.search(r'method="HEAD",route="/admin/clients/\{client_id\}",status="200"', metrics), metrics


async def test_oidcc_config_discovery_and_jwks_are_cacheable_for_less_than_the_key_publication_lead(
    app_client: httpx.AsyncClient,
) -> None:
    for path in DOCUMENTS:
        response = await app_client.get(path)
        assert response.status_code == 200
        directives = [part.strip() for part in response.headers["cache-control"].split(",")]
        assert "public" in directives
        max_age = int(
            next(part for part in directives if part.startswith("max-age=")).removeprefix("max-age=")
        )
        # A cached JWKS must show the next key well before it signs: a small fraction of the lead.
        assert 0 < max_age <= SHORTEST_PUBLICATION_LEAD_SECONDS / 10, path
        assert re.fullmatch(r'"[A-Za-z0-9_-]+"', response.headers["etag"]), path


async def test_a_matching_if_none_match_is_a_304_without_body_and_any_other_is_the_document(
    app_client: httpx.AsyncClient,
) -> None:
    for path in DOCUMENTS:
        first = await app_client.get(path)
        etag = first.headers["etag"]
        for condition in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            revalidated = await app_client.get(path, headers={"If-None-Match": condition})
            assert revalidated.status_code == 304, (path, condition)
            assert revalidated.content == b""
            assert revalidated.headers["etag"] == etag
            assert revalidated.headers["cache-control"] == first.headers["cache-control"]
        stale = await app_client.get(path, headers={"If-None-Match": '"not-this-one"'})
        assert stale.status_code == 200 and stale.content == first.content
        head = await app_client.head(path, headers={"If-None-Match": etag})
        assert head.status_code == 304 and head.content == b""


async def test_token_and_userinfo_errors_stay_no_store(app_client: httpx.AsyncClient) -> None:
    token = await app_client.post("/token", data={"grant_type": "client_credentials"})
    userinfo = await app_client.get("/userinfo")
    for response in (token, userinfo):
        assert response.status_code == 401
        assert response.headers["cache-control"] == "no-store" and "etag" not in response.headers


async def test_a_signing_key_rotation_changes_the_jwks_etag(tmp_path: Path) -> None:
    """A cache revalidating with the old ETag gets the new key set, not a 304."""
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", keys_reload_interval="50ms"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            before = await http.get(JWKS)
            document = json.loads(settings.signing_keys_file.read_text())
            write_document_atomically(
                settings.signing_keys_file, rotate(document, "ES256", time.time(), 3600, ["RS256"])
            )

            async def revalidated() -> httpx.Response | None:
                response = await http.get(JWKS, headers={"If-None-Match": before.headers["etag"]})
                return response if response.status_code == 200 else None

            after = await wait_for(revalidated, 5.0)
            assert after.headers["etag"] != before.headers["etag"]
            # Each algorithm's active key now retiring, its next key active, a new next key: one more each.
            assert len(after.json()["keys"]) == len(before.json()["keys"]) + 2
