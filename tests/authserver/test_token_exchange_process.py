"""Token exchange (RFC 8693) end to end: a real ``authserver serve --workers 2`` on SQLite and PostgreSQL,
clients registered with ``authserver clients create --exchange-*``, a user's access token from the real
sign-in pages, exchanges posted with httpx, and each refusal with the error RFC 8693 §2.2.2 gives it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authserver.crypto.keyset import KeySet
from harness.authserver import AuthServer
from harness.polling import wait_for
from tests.authserver.test_e2e_process import REDIRECT_URI, Person, discover, introspect
from tests.authserver.test_grant_revocation_process import Grants
from tests.conftest import server_process

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ORDERS_B = "https://orders-b.example.com"
BILLING = "https://billing.example.com"


@pytest.fixture(scope="module")
def server(backend: str, request: pytest.FixtureRequest) -> Iterator[AuthServer]:
    with server_process(backend, request, AUTHSERVER_REVOCATION_SYNC_INTERVAL="200ms") as started:
        yield started


@pytest.fixture(scope="module")
def metadata(server: AuthServer) -> dict[str, Any]:
    return discover(server)


def _create(server: AuthServer, *args: str) -> dict[str, Any]:
    name = f"svc-{uuid.uuid4().hex[:6]}"
    created: dict[str, Any] = json.loads(server.cli("clients", "create", "--name", name, *args).stdout)
    server.seen_secrets.add(created["client_secret"])
    return created


def _service(server: AuthServer, target: str, subject_audience: str) -> dict[str, Any]:
    """A client that exchanges the tokens sent to it at ``subject_audience`` for ``target``, delegating."""
    return _create(
        server,
        *("--grant-type", "client_credentials", "--grant-type", TOKEN_EXCHANGE),
        *("--scope", "read", "--scope", "profile"),
        *("--exchange-audience", target, "--exchange-subject-audience", subject_audience),
    )


@pytest.fixture(scope="module")
def grants(server: AuthServer, metadata: dict[str, Any]) -> Grants:
    web = _create(
        server,
        *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
        *("--scope", "openid", "--scope", "profile", "--scope", "read", "--redirect-uri", REDIRECT_URI),
    )
    return Grants(server, metadata, web, Person(server))


@pytest.fixture(scope="module")
def first(server: AuthServer) -> dict[str, Any]:
    return _service(server, ORDERS_B, server.issuer)  # users' tokens carry the default audience


@pytest.fixture(scope="module")
def second(server: AuthServer) -> dict[str, Any]:
    return _service(server, BILLING, ORDERS_B)


def _post(metadata: dict[str, Any], client: dict[str, Any], **form: str) -> httpx.Response:
    auth = (client["client_id"], client["client_secret"])
    return httpx.post(metadata["token_endpoint"], data=form, auth=auth, timeout=10)


def _own_token(metadata: dict[str, Any], client: dict[str, Any]) -> str:
    response = _post(metadata, client, grant_type="client_credentials")
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _exchange(
    metadata: dict[str, Any], client: dict[str, Any], subject: str, *, delegate: bool = True, **form: str
) -> httpx.Response:
    """An exchange of ``subject`` by ``client``, with its own token as the actor unless told otherwise."""
    request = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject,
        "subject_token_type": ACCESS_TOKEN_TYPE,
    }
    if delegate:
        request |= {"actor_token": _own_token(metadata, client), "actor_token_type": ACCESS_TOKEN_TYPE}
    return _post(metadata, client, **request, **form)


def _revoke(metadata: dict[str, Any], client: dict[str, Any], refresh_token: str) -> httpx.Response:
    form = {"token": refresh_token, "token_type_hint": "refresh_token"}
    auth = (client["client_id"], client["client_secret"])
    return httpx.post(metadata["revocation_endpoint"], data=form, auth=auth, timeout=10)


def _refused(response: httpx.Response, error: str, words: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error and words in body["error_description"], body
    assert response.headers["cache-control"] == "no-store"


def _user_token(grants: Grants) -> dict[str, Any]:
    response = grants.redeem(*grants.code())
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_discovery_lists_the_token_exchange_grant(metadata: dict[str, Any]) -> None:
    assert TOKEN_EXCHANGE in metadata["grant_types_supported"]


def test_delegation_narrows_and_a_chain_nests_the_prior_actor(
    metadata: dict[str, Any], grants: Grants, first: dict[str, Any], second: dict[str, Any]
) -> None:
    user = _user_token(grants)  # scope "openid profile read", aud the issuer
    hop = _exchange(metadata, first, user["access_token"], scope="read", audience=ORDERS_B)
    assert hop.status_code == 200, hop.text
    assert hop.headers["cache-control"] == "no-store"
    body = hop.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    assert body["scope"] == "read" and 0 < body["expires_in"] <= 900 and "refresh_token" not in body
    claims = introspect(metadata, first, body["access_token"])
    assert claims["active"] is True and claims["sub"] == grants.person.user_id
    assert (claims["aud"], claims["scope"], claims["client_id"]) == (ORDERS_B, "read", first["client_id"])
    assert claims["act"] == {"sub": first["client_id"], "client_id": first["client_id"]}

    chained = _exchange(metadata, second, body["access_token"], resource=BILLING)
    assert chained.status_code == 200, chained.text
    assert chained.json()["scope"] == "read"
    claims = introspect(metadata, second, chained.json()["access_token"])
    assert (claims["sub"], claims["aud"], claims["client_id"]) == (
        grants.person.user_id,
        BILLING,
        second["client_id"],
    )
    assert claims["act"] == {
        "sub": second["client_id"],
        "client_id": second["client_id"],
        "act": {"sub": first["client_id"], "client_id": first["client_id"]},
    }


def test_wider_scope_and_targets_outside_the_policy_are_refused(
    metadata: dict[str, Any], grants: Grants, first: dict[str, Any]
) -> None:
    token = _user_token(grants)["access_token"]
    _refused(_exchange(metadata, first, token, scope="read openid"), "invalid_scope", "openid")
    _refused(_exchange(metadata, first, token, audience=BILLING), "invalid_target", BILLING)
    _refused(_exchange(metadata, first, token, resource=BILLING), "invalid_target", BILLING)
    _refused(_exchange(metadata, first, token, delegate=False), "invalid_request", "only delegate")


async def test_a_revoked_subject_is_refused_and_what_was_exchanged_from_it_revoked(
    metadata: dict[str, Any], grants: Grants, first: dict[str, Any]
) -> None:
    user = _user_token(grants)
    exchanged = _exchange(metadata, first, user["access_token"], audience=ORDERS_B)
    assert exchanged.status_code == 200, exchanged.text
    revoked = _revoke(metadata, grants.client, user["refresh_token"])  # the whole grant (RFC 7009 §2.1)
    assert revoked.status_code == 200, revoked.text

    def refused_on_both_workers() -> bool:
        # The worker that revoked knows at once, the other within the sync interval; several requests,
        # each on its own connection, reach both.
        answers = [_exchange(metadata, first, user["access_token"]) for _ in range(6)]
        return all(answer.status_code == 400 for answer in answers)

    await wait_for(refused_on_both_workers, timeout=10, message="the revoked subject token still exchanges")
    _refused(
        _exchange(metadata, first, user["access_token"]), "invalid_request", "invalid, expired or revoked"
    )
    assert introspect(metadata, first, exchanged.json()["access_token"])["active"] is False


def test_an_expired_subject_is_refused(
    server: AuthServer, metadata: dict[str, Any], grants: Grants, first: dict[str, Any]
) -> None:
    """A token this server signed (its own key from the key file) whose exp has passed."""
    assert server.keys_file is not None
    keys = KeySet.from_document(json.loads(server.keys_file.read_text()))
    live = introspect(metadata, first, _user_token(grants)["access_token"])
    now = int(time.time())
    claims = {
        name: live[name] for name in ("iss", "sub", "aud", "client_id", "scope", "jti") if name in live
    } | {"iat": now - 120, "nbf": now - 120, "exp": now - 60}
    expired = keys.sign(claims, "at+jwt")
    _refused(_exchange(metadata, first, expired), "invalid_request", "invalid, expired or revoked")


def test_a_client_without_the_grant_type_is_unauthorized(
    server: AuthServer, metadata: dict[str, Any], grants: Grants
) -> None:
    plain = _create(server, "--grant-type", "client_credentials", "--scope", "read")
    token = _user_token(grants)["access_token"]
    _refused(_exchange(metadata, plain, token, delegate=False), "unauthorized_client", TOKEN_EXCHANGE)


@pytest.mark.parametrize("subject", ["not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_a_malformed_subject_token_is_invalid_request(
    metadata: dict[str, Any], first: dict[str, Any], subject: str
) -> None:
    _refused(_exchange(metadata, first, subject), "invalid_request", "subject_token is invalid")


@pytest.mark.parametrize(
    "token_type",
    ["urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:refresh_token", "jwt"],
)
def test_a_subject_token_type_not_accepted_is_invalid_request(
    metadata: dict[str, Any], grants: Grants, first: dict[str, Any], token_type: str
) -> None:
    user = _user_token(grants)
    response = _post(
        metadata,
        first,
        grant_type=TOKEN_EXCHANGE,
        subject_token=user["refresh_token"] if "refresh" in token_type else user["id_token"],
        subject_token_type=token_type,
        actor_token=_own_token(metadata, first),
        actor_token_type=ACCESS_TOKEN_TYPE,
    )
    _refused(response, "invalid_request", "is not accepted")
