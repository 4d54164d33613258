"""Standard claims by scope (OIDC Core §5.4) and by the claims request parameter (§5.5), through the real
login and consent pages, token endpoint and userinfo, on both databases. Named after the OpenID conformance
suite's modules; like them, each checks that every claim of the granted scopes the user has is returned,
with the types §5.1 gives them, and that a claim the user lacks is left out, never null."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from urllib.parse import urlencode

import httpx
import pytest

from authserver.protocol.models import User
from harness.accounts import new_user
from tests.support.app import store_of
from tests.support.claims import ADDRESS, with_standard_claims
from tests.support.oauth import (
    CALLBACK,
    PASSWORD,
    authorization_request,
    authorize_code,
    hidden_fields,
    query_of,
    redeem_code,
    refresh,
    register,
)

PROFILE = ("name", "given_name", "family_name", "preferred_username", "locale", "zoneinfo", "updated_at")


@pytest.fixture(scope="module")
async def jane(app_client: httpx.AsyncClient) -> User:
    """A user with every standard claim this server keeps."""
    created = with_standard_claims(new_user(f"jane-{uuid.uuid4().hex[:6]}", PASSWORD, email="-", name="-"))
    await store_of(app_client).create_user(created)
    return created


@pytest.fixture(scope="module")
async def bare(app_client: httpx.AsyncClient) -> User:
    """A user with a username and nothing else."""
    created = new_user(f"bare-{uuid.uuid4().hex[:6]}", PASSWORD, email="-", name="-")
    created = replace(created, email=None, name=None)
    await store_of(app_client).create_user(created)
    return created


@pytest.fixture(scope="module")
async def claims_client(app_client: httpx.AsyncClient) -> str:
    scopes = ["openid", "profile", "email", "address", "phone"]
    grants = ["authorization_code", "refresh_token"]
    registered = await register(
        app_client, type="public", grant_types=grants, scopes=scopes, redirect_uris=[CALLBACK]
    )
    return registered[0]


async def _sign_in(
    http: httpx.AsyncClient, client_id: str, user: User, scope: str, **extra: str
) -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
    """(the token response, the ID token's claims, userinfo's answer)."""
    code, verifier = await authorize_code(http, client_id, CALLBACK, user.username, scope=scope, **extra)
    response = await redeem_code(http, code, verifier, client_id=client_id)
    assert response.status_code == 200, response.text
    body = response.json()
    id_token = http.app.state.services.keyset().verify(body["id_token"], options={"verify_aud": False})  # type: ignore[attr-defined]
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200, info.text
    return body, id_token, info.json()


def _user_claims(claims: dict[str, object]) -> set[str]:
    """The user's claims of an ID token or userinfo answer (not the token's own: iss, aud, at_hash, ...)."""
    token_claims = {"iss", "aud", "azp", "exp", "iat", "auth_time", "at_hash", "nonce", "sid"}
    assert all(value is not None for value in claims.values()), claims  # §5.3.2: absent, never null
    return set(claims) - token_claims


def _check_jane(claims: dict[str, object], jane: User) -> None:
    """§5.1's value and type of each of ``jane``'s claims present in ``claims``."""
    expected: dict[str, object] = {
        "sub": jane.user_id,
        "name": "Jane Doe",
        "given_name": "Jane",
        "family_name": "Doe",
        "preferred_username": jane.username,
        "locale": "fr-FR",
        "zoneinfo": "Europe/Paris",
        "email": "jane@example.com",
        "email_verified": True,
        "phone_number": "+33 1 23 45 67 89",
        "phone_number_verified": True,
        "address": ADDRESS,
    }
    for name in _user_claims(claims) - {"updated_at"}:
        assert claims[name] == expected[name], name
    if "updated_at" in claims:
        updated_at = claims["updated_at"]  # seconds since the epoch, as a number
        assert isinstance(updated_at, int) and time.time() - 3600 < updated_at <= time.time()


async def _check_scope(
    app_client: httpx.AsyncClient, claims_client: str, jane: User, scope: str, expected: set[str]
) -> None:
    """The scope's claims (§5.4), all of them for a user who has them, in userinfo and in the ID token."""
    body, id_token, info = await _sign_in(app_client, claims_client, jane, scope)
    assert body["scope"] == scope
    assert _user_claims(info) == expected
    assert _user_claims(id_token) == expected
    _check_jane(info, jane)
    _check_jane(id_token, jane)


async def test_oidcc_scope_profile(app_client: httpx.AsyncClient, claims_client: str, jane: User) -> None:
    await _check_scope(app_client, claims_client, jane, "openid profile", {"sub", *PROFILE})


async def test_oidcc_scope_email(app_client: httpx.AsyncClient, claims_client: str, jane: User) -> None:
    await _check_scope(app_client, claims_client, jane, "openid email", {"sub", "email", "email_verified"})


async def test_oidcc_scope_address(app_client: httpx.AsyncClient, claims_client: str, jane: User) -> None:
    await _check_scope(app_client, claims_client, jane, "openid address", {"sub", "address"})


async def test_oidcc_scope_phone(app_client: httpx.AsyncClient, claims_client: str, jane: User) -> None:
    await _check_scope(
        app_client, claims_client, jane, "openid phone", {"sub", "phone_number", "phone_number_verified"}
    )


async def test_oidcc_scope_all(app_client: httpx.AsyncClient, claims_client: str, jane: User) -> None:
    everything = {"email", "email_verified", "address", "phone_number", "phone_number_verified"}
    await _check_scope(
        app_client, claims_client, jane, "openid profile email address phone", {"sub", *PROFILE, *everything}
    )


async def test_oidcc_ensure_other_scope_order_succeeds(
    app_client: httpx.AsyncClient, claims_client: str, jane: User
) -> None:
    """RFC 6749 §3.3: the order of the scope values does not matter."""
    _, id_token, info = await _sign_in(app_client, claims_client, jane, "email openid")
    assert _user_claims(info) == {"sub", "email", "email_verified"} == _user_claims(id_token)
    _, _, info = await _sign_in(app_client, claims_client, jane, "phone address email openid profile")
    assert {"address", "phone_number", "email", "given_name"} <= _user_claims(info)


async def test_a_claim_the_user_lacks_is_left_out(
    app_client: httpx.AsyncClient, claims_client: str, bare: User
) -> None:
    _, id_token, info = await _sign_in(app_client, claims_client, bare, "openid profile email address phone")
    assert _user_claims(info) == {"sub", "preferred_username", "updated_at"} == _user_claims(id_token)


async def test_oidcc_claims_essential(
    app_client: httpx.AsyncClient, claims_client: str, jane: User, bare: User
) -> None:
    """``name`` asked as essential for userinfo (§5.5.1) comes back from userinfo (and from userinfo with a
    refreshed access token) and not in the ID token; a user without one still gets tokens (not an error)."""
    claims = json.dumps({"userinfo": {"name": {"essential": True}}})
    body, id_token, info = await _sign_in(app_client, claims_client, jane, "openid", claims=claims)
    assert info == {"sub": jane.user_id, "name": "Jane Doe"}
    assert "name" not in id_token

    refreshed = await refresh(app_client, str(body["refresh_token"]), client_id=claims_client)
    assert refreshed.status_code == 200, refreshed.text
    again = await app_client.get(
        "/userinfo", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert again.json() == {"sub": jane.user_id, "name": "Jane Doe"}

    _, _, info = await _sign_in(app_client, claims_client, bare, "openid", claims=claims)
    assert info == {"sub": bare.user_id}


async def test_claims_asked_for_the_id_token_go_there_only(
    app_client: httpx.AsyncClient, claims_client: str, jane: User
) -> None:
    claims = json.dumps(
        {"id_token": {"given_name": None, "address": {"essential": False}, "unknown_claim": None}}
    )
    _, id_token, info = await _sign_in(app_client, claims_client, jane, "openid", claims=claims)
    assert id_token["given_name"] == "Jane" and id_token["address"] == ADDRESS
    assert "unknown_claim" not in id_token
    assert info == {"sub": jane.user_id}


async def _authorize(http: httpx.AsyncClient, client_id: str, **extra: str) -> httpx.Response:
    params, _ = authorization_request(client_id, scope="openid", state="xyz", **extra)
    return await http.get(f"/authorize?{urlencode(params)}")


@pytest.mark.parametrize(
    "claims",
    [
        "{not json",
        "[]",
        '"userinfo"',
        '{"userinfo": []}',
        '{"id_token": {"name": 3}}',
        '{"userinfo": {"name": {"essential": "yes"}}}',
        '{"userinfo": {"name": {"values": "Jane"}}}',
        '{"id_token": {"sub": {"value": 7}}}',
        '{"userinfo": {"a": null, "b": "' + "x" * 5000 + '"}}',
    ],
)
async def test_a_malformed_claims_request_is_invalid_request(
    app_client: httpx.AsyncClient, claims_client: str, claims: str
) -> None:
    """§5.5 and RFC 6749 §4.1.2.1: the error goes back to the client, before any page."""
    response = await _authorize(app_client, claims_client, claims=claims)
    assert response.status_code in (302, 303), response.text
    returned = query_of(response.headers["location"])
    assert returned["error"] == "invalid_request" and returned["state"] == "xyz"


async def test_acr_is_never_returned_and_an_essential_acr_value_cannot_be_met(
    app_client: httpx.AsyncClient, claims_client: str, jane: User
) -> None:
    """This server has no authentication context classes: acr_values and a voluntary acr request are
    answered without acr (§5.5.1.1); an essential one naming values is a failed authentication."""
    _, id_token, info = await _sign_in(
        app_client,
        claims_client,
        jane,
        "openid",
        acr_values="urn:mace:incommon:iap:silver",
        claims=json.dumps({"id_token": {"acr": {"values": ["silver"]}}, "userinfo": {"acr": None}}),
    )
    assert "acr" not in id_token and "acr" not in info
    essential = json.dumps({"id_token": {"acr": {"essential": True, "values": ["silver"]}}})
    response = await _authorize(app_client, claims_client, claims=essential)
    assert query_of(response.headers["location"])["error"] == "access_denied"


async def test_a_sub_value_allows_no_code_for_another_user(
    app_client: httpx.AsyncClient, claims_client: str, jane: User, bare: User
) -> None:
    """§5.5.1: a sub asked with a value names the only user an ID token may be issued for."""
    claims = json.dumps({"id_token": {"sub": {"value": jane.user_id}}})
    _, id_token, _ = await _sign_in(app_client, claims_client, jane, "openid", claims=claims)
    assert id_token["sub"] == jane.user_id
    params, _ = authorization_request(
        claims_client, scope="openid", state="xyz", claims=claims, prompt="login consent"
    )
    page = await app_client.get(f"/authorize?{urlencode(params)}")
    login = await app_client.post(
        "/authorize/login",
        data={**hidden_fields(page.text), "username": bare.username, "password": PASSWORD},
    )
    consent = await app_client.post(
        "/authorize/consent", data={**hidden_fields(login.text), "decision": "allow"}
    )
    returned = query_of(consent.headers["location"])
    assert returned["error"] == "access_denied" and "code" not in returned


async def test_discovery_names_the_scopes_and_claims_served(app_client: httpx.AsyncClient) -> None:
    metadata = (await app_client.get("/.well-known/openid-configuration")).json()
    assert {"openid", "profile", "email", "address", "phone", "groups"} <= set(metadata["scopes_supported"])
    assert {"sub", *PROFILE, "email", "email_verified", "address", "phone_number", "groups"} <= set(
        metadata["claims_supported"]
    )
    assert metadata["claims_parameter_supported"] is True
    assert "acr" not in metadata["claims_supported"]


async def test_the_groups_scope_releases_the_users_groups_in_every_token_and_userinfo(
    app_client: httpx.AsyncClient,
) -> None:
    """Local membership (a user created with groups): the ID token, userinfo and the access token carry the
    groups claim when the groups scope is granted, a refreshed access token carries the groups as they are
    now, and without the scope none of them has it."""
    store = store_of(app_client)
    gina = replace(
        new_user(f"gina-{uuid.uuid4().hex[:6]}", PASSWORD, email="-", name="-"), groups=("ops", "dev")
    )
    await store.create_user(gina)
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "groups"],
        redirect_uris=[CALLBACK],
    )
    body, id_token, info = await _sign_in(app_client, client_id, gina, "openid groups")
    assert id_token["groups"] == ["ops", "dev"] and info["groups"] == ["ops", "dev"]
    assert _claims(body["access_token"])["groups"] == ["ops", "dev"]

    await store.change_user(gina.username, lambda user: replace(user, groups=("dev",)))
    refreshed = await refresh(app_client, str(body["refresh_token"]), client_id=client_id)
    assert refreshed.status_code == 200, refreshed.text
    assert _claims(refreshed.json()["access_token"])["groups"] == ["dev"]

    body, id_token, info = await _sign_in(app_client, client_id, gina, "openid")
    assert "groups" not in id_token and "groups" not in info
    assert "groups" not in _claims(body["access_token"])


def _claims(token: object) -> dict[str, object]:
    import base64

    payload = str(token).split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded
