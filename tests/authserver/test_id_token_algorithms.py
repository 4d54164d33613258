"""ID tokens in the algorithm each client chose, RS256 always among them (OpenID Connect Core §15.1).

Named after the OpenID conformance suite's modules where one exists: ``oidcc-idtoken-rs256`` (an ID token
signed with RS256, with a ``kid``), ``oidcc-idtoken-signature`` (its signature verifies against the
published JWKS), ``oidcc-server-rotate-keys`` (a signing-key rotation publishes new keys and keeps the old
ones), plus the discovery checks Authlib's ``OpenIDProviderMetadata.validate()`` makes. Through a real
``authserver serve`` process; tokens are verified by PyJWT against the served JWKS. The client column is
tested on both databases in-process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from authlib.common.security import generate_token
from authlib.oidc.discovery import OpenIDProviderMetadata
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.crypto.keyset import write_document_atomically
from authserver.crypto.keyset_document import add_algorithms, new_document
from authserver.storage.backends import store_for
from authserver.storage.engine import create_engine
from harness.authserver import AuthServer, running_server
from harness.polling import wait_for
from tests.authserver.test_e2e_process import REDIRECT_URI, CodeFlow, Person
from tests.conftest import database_url_for, make_settings
from tests.support.app import store_of
from tests.support.migrations import migrate_to
from tests.support.oauth import ADMIN_TOKEN, CALLBACK, admin_headers

OPENID_CONFIGURATION = "/.well-known/openid-configuration"
RELOAD_DEADLINE_SECONDS = 10.0


def register(server: AuthServer, alg: str | None, name: str = "rp") -> dict[str, Any]:
    """A confidential code-flow client through the admin API, with ``id_token_signed_response_alg``."""
    client_id = f"{name}-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "name": name,
        "grant_types": ["authorization_code"],
        "scopes": ["openid", "profile"],
        "redirect_uris": [REDIRECT_URI],
    }
    if alg is not None:
        body["id_token_signed_response_alg"] = alg
    response = httpx.put(
        f"{server.base_url}/admin/clients/{client_id}", json=body, headers=admin_headers(), timeout=10
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    server.seen_secrets.add(created["client_secret"])
    return created


def discover(server: AuthServer) -> dict[str, Any]:
    response = httpx.get(server.base_url + OPENID_CONFIGURATION, timeout=5)
    assert response.status_code == 200, response.text
    metadata: dict[str, Any] = response.json()
    return metadata


def id_token_of(server: AuthServer, client: dict[str, Any], person: Person) -> tuple[str, str]:
    """(id_token, access_token) from a full code flow through the login and consent pages."""
    metadata = discover(server)
    oauth, token = CodeFlow(server, metadata, client).run(person, "openid profile", nonce=generate_token(16))
    oauth.close()
    return token["id_token"], token["access_token"]


def verify_id_token(server: AuthServer, id_token: str, client_id: str, alg: str) -> dict[str, Any]:
    """oidcc-idtoken-signature: the signature against the served JWKS, in exactly ``alg``."""
    metadata = discover(server)
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"], cache_jwk_set=False).get_signing_key_from_jwt(
        id_token
    )
    claims: dict[str, Any] = jwt.decode(
        id_token,
        signing_key,
        algorithms=[alg],
        audience=client_id,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "at_hash"]},
    )
    return claims


def at_hash(access_token: str) -> str:
    # RS256 and ES256 both hash with SHA-256 (OIDC Core §3.1.3.6: the hash of the ID token's alg).
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(tmp_path_factory.mktemp("idtoken-alg")) as started:
        started.seen_secrets.add(ADMIN_TOKEN)
        yield started


@pytest.fixture(scope="module")
def person(server: AuthServer) -> Person:
    return Person(server)


# Discovery and JWKS ----------------------------------------------------------------------------------------


def test_discovery_passes_authlib_openid_provider_metadata_validation(server: AuthServer) -> None:
    metadata = discover(server)
    OpenIDProviderMetadata(metadata).validate()  # raises when RS256 is missing (OIDC Discovery §3)
    assert set(metadata["id_token_signing_alg_values_supported"]) == {"ES256", "RS256"}


def test_jwks_publishes_active_and_next_keys_of_both_kinds(server: AuthServer) -> None:
    keys = httpx.get(discover(server)["jwks_uri"], timeout=5).json()["keys"]
    by_alg: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        assert key["use"] == "sig" and key["kid"] and "d" not in key and "p" not in key
        by_alg.setdefault(key["alg"], []).append(key)
    assert {alg: len(found) for alg, found in by_alg.items()} == {"ES256": 2, "RS256": 2}
    for key in by_alg["RS256"]:
        modulus = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
        assert int.from_bytes(modulus, "big").bit_length() >= 2048


# The ID tokens ---------------------------------------------------------------------------------------------


def test_oidcc_idtoken_rs256(server: AuthServer, person: Person) -> None:
    client = register(server, "RS256")
    id_token, access_token = id_token_of(server, client, person)
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256" and header["kid"]  # OIDCC-10.1: a kid; OIDCC-3.1.3.7: the alg asked
    claims = verify_id_token(server, id_token, client["client_id"], "RS256")
    assert claims["sub"] == person.user_id and claims["at_hash"] == at_hash(access_token)
    # Access tokens keep the server's access-token algorithm.
    assert jwt.get_unverified_header(access_token)["alg"] == "ES256"


def test_oidcc_idtoken_signature_es256(server: AuthServer, person: Person) -> None:
    client = register(server, "ES256")
    id_token, access_token = id_token_of(server, client, person)
    assert jwt.get_unverified_header(id_token)["alg"] == "ES256"
    claims = verify_id_token(server, id_token, client["client_id"], "ES256")
    assert claims["at_hash"] == at_hash(access_token)


def test_a_client_that_chose_no_algorithm_gets_the_server_default_es256(
    server: AuthServer, person: Person
) -> None:
    client = register(server, None)
    assert client["id_token_signed_response_alg"] is None
    id_token, _ = id_token_of(server, client, person)
    verify_id_token(server, id_token, client["client_id"], "ES256")


def test_an_algorithm_the_key_set_cannot_sign_is_refused_at_registration(server: AuthServer) -> None:
    response = httpx.put(
        f"{server.base_url}/admin/clients/eddsa-{uuid.uuid4().hex[:6]}",
        json={
            "name": "eddsa",
            "grant_types": ["authorization_code"],
            "redirect_uris": [REDIRECT_URI],
            "id_token_signed_response_alg": "EdDSA",
        },
        headers=admin_headers(),
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "ES256, RS256" in response.json()["error_description"]
    unknown = httpx.put(
        f"{server.base_url}/admin/clients/none-alg",
        json={"name": "x", "grant_types": ["client_credentials"], "id_token_signed_response_alg": "none"},
        headers=admin_headers(),
        timeout=10,
    )
    assert unknown.status_code == 400


def published_kids(server: AuthServer) -> set[str]:
    return {key["kid"] for key in httpx.get(discover(server)["jwks_uri"], timeout=5).json()["keys"]}


def id_tokens_by_alg(
    server: AuthServer, clients: dict[str, dict[str, Any]], person: Person
) -> dict[str, str]:
    return {alg: id_token_of(server, client, person)[0] for alg, client in clients.items()}


async def test_oidcc_server_rotate_keys_keeps_both_kinds_verifying(
    server: AuthServer, person: Person
) -> None:
    clients = {"RS256": register(server, "RS256", "rs"), "ES256": register(server, "ES256", "es")}
    before = id_tokens_by_alg(server, clients, person)
    kids_before = published_kids(server)

    rotated = server.rotate_keys()
    assert set(rotated["active_kids"]) == {"ES256", "RS256"}
    # Each kind's promoted key was published before the rotation (it was that kind's next key).
    assert set(rotated["active_kids"].values()) <= kids_before

    def signed_with_new_keys() -> dict[str, str] | None:
        tokens = id_tokens_by_alg(server, clients, person)
        kids = {alg: jwt.get_unverified_header(token)["kid"] for alg, token in tokens.items()}
        return tokens if kids == rotated["active_kids"] else None

    after = await wait_for(
        signed_with_new_keys, timeout=RELOAD_DEADLINE_SECONDS, message="ID tokens signed by the new keys"
    )
    kids_after = published_kids(server)
    assert kids_before <= kids_after and len(kids_after - kids_before) == 2  # a new next key of each kind
    for alg, client in clients.items():
        for token in (before[alg], after[alg]):
            verify_id_token(server, token, client["client_id"], alg)


# A key set from before there were several algorithms -------------------------------------------------------


def one_algorithm_document(path: Path) -> dict[str, Any]:
    """A key file as earlier versions wrote it: ES256 only, no ``active_kids``."""
    document = new_document("ES256")
    del document["active_kids"]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_document_atomically(path, document)
    return document


def metrics_text(server: AuthServer) -> str:
    return httpx.get(server.base_url + "/metrics", timeout=5).text


async def test_an_old_one_algorithm_key_set_still_serves_and_falls_back_until_rs256_is_added(
    tmp_path: Path,
) -> None:
    """As in Kubernetes (a mounted key file the server never writes): ID tokens for RS256 are signed with
    ES256, said in the log and in a metric, until the key set gains RS256 (the operator's next reconcile)."""
    keys_file = tmp_path / "keys.json"
    old = one_algorithm_document(keys_file)
    session_secret = "s" * 40  # what the operator mounts beside the keys
    with running_server(
        tmp_path,
        AUTHSERVER_GENERATE_SIGNING_KEYS="false",
        AUTHSERVER_SESSION_SECRET=session_secret,
        AUTHSERVER_ID_TOKEN_SIGNING_ALGORITHM="RS256",  # a deployment that made RS256 its default
    ) as server:
        server.seen_secrets.add(session_secret)
        server.seen_secrets.add(ADMIN_TOKEN)
        person = Person(server)
        assert discover(server)["id_token_signing_alg_values_supported"] == ["ES256"]
        assert "the signing key set has no RS256 key" in server.log_text()
        # A client that chose nothing (every client registered before) asks for this server's default, RS256.
        client = register(server, None)
        fallback, access_token = id_token_of(server, client, person)
        assert jwt.get_unverified_header(fallback)["kid"] == old["active_kid"]
        claims = verify_id_token(server, fallback, client["client_id"], "ES256")
        assert claims["at_hash"] == at_hash(access_token)
        fallbacks = 'authserver_id_token_algorithm_fallbacks_total{asked="RS256",used="ES256"} 1.0'
        assert fallbacks in metrics_text(server)

        upgraded = add_algorithms(old, ["RS256"])  # what the operator writes on its next reconcile
        server.remember_private_keys()
        write_document_atomically(keys_file, upgraded)
        server.remember_private_keys()
        await wait_for(
            lambda: "RS256" in discover(server)["id_token_signing_alg_values_supported"],
            timeout=RELOAD_DEADLINE_SECONDS,
            message="the server reloads the key file with RS256",
        )
        id_token, _ = id_token_of(server, client, person)
        assert jwt.get_unverified_header(id_token)["kid"] == upgraded["active_kids"]["RS256"]
        verify_id_token(server, id_token, client["client_id"], "RS256")
        # The ID token signed before with ES256 still verifies: its key is still published.
        verify_id_token(server, fallback, client["client_id"], "ES256")


def test_a_key_file_the_server_manages_gains_rs256_on_start(tmp_path: Path) -> None:
    """The embedded default (AUTHSERVER_GENERATE_SIGNING_KEYS on, the server owns the file): a file from an
    earlier version gains RS256 keys before the workers start; the ES256 keys keep their roles."""
    old = one_algorithm_document(tmp_path / "keys.json")
    with running_server(tmp_path) as server:
        document = json.loads((tmp_path / "keys.json").read_text())
        assert document["active_kid"] == old["active_kid"]
        assert set(document["active_kids"]) == {"ES256", "RS256"}
        assert {key["kid"] for key in old["keys"]} <= {key["kid"] for key in document["keys"]}
        OpenIDProviderMetadata(discover(server)).validate()


# The client column, on both databases ----------------------------------------------------------------------


async def test_the_choice_is_stored_shown_changed_and_cleared(app_client: httpx.AsyncClient) -> None:
    client_id = f"alg-{uuid.uuid4().hex[:8]}"
    base = {"name": "alg", "grant_types": ["authorization_code"], "redirect_uris": [CALLBACK]}
    for alg in ("ES256", "RS256", None):
        body = {**base, **({"id_token_signed_response_alg": alg} if alg else {})}
        response = await app_client.put(f"/admin/clients/{client_id}", json=body, headers=admin_headers())
        assert response.status_code in (200, 201), response.text
        assert response.json()["id_token_signed_response_alg"] == alg
        shown = await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())
        assert shown.json()["id_token_signed_response_alg"] == alg
        stored = await store_of(app_client).get_client(client_id)
        assert stored is not None and stored.id_token_signed_response_alg == alg


async def _client_columns(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: {column["name"] for column in sa.inspect(sync).get_columns("clients")}
        )


async def test_migration_0004_upgrades_existing_clients_to_the_default_and_downgrades(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = database_url_for(backend, tmp_path, lambda: request.getfixturevalue("postgres_cluster"))
    engine = create_engine(make_settings(tmp_path, url))
    try:
        await migrate_to(engine, "0002")
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO clients (client_id, name, client_type, token_endpoint_auth_method, "
                    "grant_types, scopes, audiences, redirect_uris, created_at, updated_at) VALUES "
                    "('before', 'before', 'confidential', 'client_secret_basic', '[\"client_credentials\"]', "
                    "'[]', '[]', '[]', :now, :now)"
                ),
                {"now": now},
            )
        await migrate_to(engine, "0004")
        assert "id_token_signed_response_alg" in await _client_columns(engine)
        await migrate_to(engine, "head")  # the store reads every later column too
        client = await store_for(engine).get_client("before")
        assert client is not None and client.id_token_signed_response_alg is None  # the server's default
        await migrate_to(engine, "0002", downgrade=True)
        assert "id_token_signed_response_alg" not in await _client_columns(engine)
        async with engine.connect() as connection:
            names = (await connection.execute(sa.text("SELECT client_id FROM clients"))).scalars().all()
        assert names == ["before"]
    finally:
        await engine.dispose()
