"""OAuth 2.0 Token Exchange (RFC 8693) over the in-memory store: what an exchange issues (§2.2.1), how it
narrows, delegation and its chains (§4.1), may_act (§4.4), and every refusal with its §2.2.2 error."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from authserver.protocol.errors import InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from authserver.protocol.exchangeable_tokens import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, PresentedToken
from authserver.protocol.grants.token_exchange import MAX_DELEGATION_DEPTH
from authserver.protocol.models import GrantType, TokenExchangePolicy
from authserver.protocol.tokens import GRANT_ID_CLAIM
from tests.support.protocol_server import API, ISSUER, ProtocolServer, RegisteredForTest

TOKEN_EXCHANGE = GrantType.TOKEN_EXCHANGE.value
ORDERS_B = "https://orders-b.example.com"
BILLING = "https://billing.example.com"
FOREIGN_ISSUER = "https://idp.example.org"


@dataclass
class User:
    token: str  # an access token from the code flow: sub the user, aud API, issued to the web client
    web: RegisteredForTest
    refresh_token: str


async def _signed_in(server: ProtocolServer) -> User:
    web = server.web_client(public=False)
    user = await server.user()
    code, verifier = await server.authorize(web, user)
    body = await server.redeem(web, code, verifier)
    return User(body["access_token"], web, body["refresh_token"])


def _service(
    server: ProtocolServer,
    *,
    audiences: tuple[str, ...] = (ORDERS_B,),
    subject_audiences: tuple[str, ...] = (API,),
    impersonation: bool = False,
    **fields: Any,
) -> RegisteredForTest:
    """A confidential client with the token-exchange grant, to which users' tokens for API are sent."""
    policy = TokenExchangePolicy(audiences, subject_audiences, impersonation)
    values: dict[str, Any] = {
        "grant_types": ("client_credentials", TOKEN_EXCHANGE),
        "scopes": ("orders.read", "profile"),
        "token_exchange": policy,
        **fields,
    }
    return server.confidential_client(**values)


async def _own_token(server: ProtocolServer, client: RegisteredForTest) -> str:
    body = await server.token(client, grant_type="client_credentials")
    return str(body["access_token"])


async def _exchange(
    server: ProtocolServer, client: RegisteredForTest, subject: str, **params: str | list[str]
) -> dict[str, Any]:
    return await server.token(
        client,
        grant_type=TOKEN_EXCHANGE,
        subject_token=subject,
        subject_token_type=ACCESS_TOKEN_TYPE,
        **params,
    )


async def _delegate(
    server: ProtocolServer, client: RegisteredForTest, subject: str, **params: str | list[str]
) -> dict[str, Any]:
    """Exchange ``subject`` with ``client``'s own client_credentials token as the actor."""
    actor = await _own_token(server, client)
    return await _exchange(
        server, client, subject, actor_token=actor, actor_token_type=ACCESS_TOKEN_TYPE, **params
    )


def _claims(server: ProtocolServer, token: str) -> dict[str, Any]:
    claims = server.inspector.decode_access_token(token)
    assert claims is not None
    return claims


async def test_delegation_narrows_scope_and_audience_and_names_the_actor(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server)
    body = await _delegate(server, service, user.token, scope="orders.read", audience=ORDERS_B)

    # §2.2.1: issued_token_type, Bearer, expires_in, the scope; no refresh token.
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    assert body["scope"] == "orders.read" and "refresh_token" not in body and "id_token" not in body
    subject, issued = _claims(server, user.token), _claims(server, body["access_token"])
    assert issued["sub"] == subject["sub"] and issued["client_id"] == service.client_id
    assert issued["aud"] == ORDERS_B and issued["scope"] == "orders.read"
    assert issued["act"] == {"sub": service.client_id, "client_id": service.client_id}
    assert issued[GRANT_ID_CLAIM] == subject[GRANT_ID_CLAIM]  # revoking the user's grant reaches it
    assert body["expires_in"] <= subject["exp"] - int(time.time()) + 1
    introspected = await server.introspect(service, token=body["access_token"])
    assert introspected["active"] is True and introspected["act"]["sub"] == service.client_id


async def test_nothing_asked_keeps_the_subjects_audience_and_the_scopes_both_allow(
    server: ProtocolServer,
) -> None:
    user = await _signed_in(server)  # scope "openid profile orders.read", aud API
    body = await _delegate(server, _service(server), user.token)
    assert body["scope"] == "profile orders.read"  # openid is not the service's
    assert _claims(server, body["access_token"])["aud"] == API


async def test_audience_and_resource_together_within_the_policy(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server, audiences=(ORDERS_B, "billing", BILLING))
    body = await _delegate(server, service, user.token, audience=["billing", ORDERS_B], resource=BILLING)
    assert _claims(server, body["access_token"])["aud"] == ["billing", ORDERS_B, BILLING]


async def test_a_chain_of_delegation_nests_the_prior_actor(server: ProtocolServer) -> None:
    """§4.1: user → A → B: B's token names B as the current actor and A, nested, as the prior one."""
    user = await _signed_in(server)
    first = _service(server)
    second = _service(server, audiences=(BILLING,), subject_audiences=(ORDERS_B,))
    hop = await _delegate(server, first, user.token, audience=ORDERS_B)
    body = await _delegate(server, second, hop["access_token"], audience=BILLING)
    issued = _claims(server, body["access_token"])
    assert issued["sub"] == _claims(server, user.token)["sub"] and issued["aud"] == BILLING
    assert issued["act"] == {
        "sub": second.client_id,
        "client_id": second.client_id,
        "act": {"sub": first.client_id, "client_id": first.client_id},
    }


async def test_impersonation_only_when_the_policy_allows_it(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    with pytest.raises(InvalidRequest, match="only delegate"):
        await _exchange(server, _service(server), user.token, audience=ORDERS_B)
    body = await _exchange(server, _service(server, impersonation=True), user.token, audience=ORDERS_B)
    issued = _claims(server, body["access_token"])
    assert "act" not in issued and issued["sub"] == _claims(server, user.token)["sub"]


async def test_impersonating_a_delegated_token_keeps_its_actor(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    first = _service(server)
    hop = await _delegate(server, first, user.token, audience=ORDERS_B)
    second = _service(server, audiences=(BILLING,), subject_audiences=(ORDERS_B,), impersonation=True)
    body = await _exchange(server, second, hop["access_token"], audience=BILLING)
    assert _claims(server, body["access_token"])["act"] == {
        "sub": first.client_id,
        "client_id": first.client_id,
    }


async def test_a_wider_scope_is_invalid_scope(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server, scopes=("orders.read", "orders.write", "profile"))
    with pytest.raises(InvalidScope, match=r"orders\.write"):  # the client's, not the subject's
        await _delegate(server, service, user.token, scope="orders.read orders.write")
    with pytest.raises(InvalidScope, match="openid"):  # the subject's, not the client's
        await _delegate(server, service, user.token, scope="openid orders.read")


async def test_a_target_outside_the_policy_is_invalid_target(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server)
    with pytest.raises(InvalidTarget, match=BILLING):
        await _delegate(server, service, user.token, audience=BILLING)
    with pytest.raises(InvalidTarget, match=BILLING):
        await _delegate(server, service, user.token, resource=[ORDERS_B, BILLING])
    with pytest.raises(InvalidTarget, match="absolute URI"):
        await _delegate(server, service, user.token, resource="orders-b")
    # Its own client audiences are not exchange targets: the policy alone says.
    with pytest.raises(InvalidTarget):
        await _delegate(server, _service(server, audiences=()), user.token, audience=API)


async def test_a_revoked_subject_token_is_invalid_request(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server)
    await server.revoke(user.web, token=user.token)
    with pytest.raises(InvalidRequest, match="invalid, expired or revoked"):
        await _delegate(server, service, user.token)


async def test_revoking_the_subjects_grant_revokes_what_was_exchanged(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server)
    exchanged = (await _delegate(server, service, user.token, audience=ORDERS_B))["access_token"]
    assert (await server.introspect(service, token=exchanged))["active"] is True
    await server.revoke(user.web, token=user.refresh_token)  # the refresh family: the whole grant
    assert (await server.introspect(service, token=exchanged))["active"] is False
    with pytest.raises(InvalidRequest, match="invalid, expired or revoked"):
        await _delegate(server, service, user.token)


async def test_an_expired_subject_token_is_invalid_request(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    subject = _claims(server, user.token)
    expired, _ = server.minter.access_token(
        user.web.client, subject=subject["sub"], scope="orders.read", audience=API, ttl=-60
    )
    with pytest.raises(InvalidRequest, match="invalid, expired or revoked"):
        await _delegate(server, _service(server), expired)


async def test_the_issued_token_never_outlives_its_subject(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    subject = _claims(server, user.token)
    short, _ = server.minter.access_token(
        user.web.client, subject=subject["sub"], scope="orders.read", audience=API, ttl=30
    )
    body = await _delegate(server, _service(server), short)
    assert body["expires_in"] <= 30
    assert _claims(server, body["access_token"])["exp"] <= _claims(server, short)["exp"]


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",  # alg none
    ],
)
async def test_a_malformed_subject_token_is_invalid_request(server: ProtocolServer, token: str) -> None:
    with pytest.raises(InvalidRequest, match="subject_token is invalid"):
        await _delegate(server, _service(server), token)


async def test_an_id_token_is_not_an_access_token(server: ProtocolServer) -> None:
    """RFC 9068 §4: typ tells them apart; an ID token presented as a JWT is refused too."""
    web = server.web_client(public=False)
    user = await server.user()
    code, verifier = await server.authorize(web, user)
    id_token = (await server.redeem(web, code, verifier))["id_token"]
    service = _service(server)
    for token_type in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        with pytest.raises(InvalidRequest, match="subject_token is invalid"):
            actor = await _own_token(server, service)
            await server.token(
                service,
                grant_type=TOKEN_EXCHANGE,
                subject_token=id_token,
                subject_token_type=token_type,
                actor_token=actor,
                actor_token_type=ACCESS_TOKEN_TYPE,
            )


@pytest.mark.parametrize(
    "token_type",
    [
        "urn:ietf:params:oauth:token-type:id_token",
        "urn:ietf:params:oauth:token-type:refresh_token",
        "urn:ietf:params:oauth:token-type:saml2",
        "access_token",
    ],
)
async def test_a_subject_token_type_not_accepted_is_invalid_request(
    server: ProtocolServer, token_type: str
) -> None:
    """RFC 8693 defines no token-type error (unsupported_token_type is RFC 7009's): invalid_request."""
    user = await _signed_in(server)
    service = _service(server, impersonation=True)
    with pytest.raises(InvalidRequest, match=r"subject_token_type .* is not accepted"):
        await server.token(
            service, grant_type=TOKEN_EXCHANGE, subject_token=user.token, subject_token_type=token_type
        )


async def test_jwt_is_accepted_as_the_type_of_this_servers_access_tokens(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server, impersonation=True)
    body = await server.token(
        service, grant_type=TOKEN_EXCHANGE, subject_token=user.token, subject_token_type=JWT_TOKEN_TYPE
    )
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject_token": None}, "'subject_token' is required"),
        ({"subject_token_type": None}, "'subject_token_type' is required"),
        ({"actor_token_type": ACCESS_TOKEN_TYPE}, "'actor_token' is required"),  # §2.1: not without one
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "requested_token_type"),
        ({"requested_token_type": JWT_TOKEN_TYPE}, "requested_token_type"),
    ],
)
async def test_malformed_requests_are_invalid_request(
    server: ProtocolServer, changes: dict[str, str | None], message: str
) -> None:
    user = await _signed_in(server)
    service = _service(server, impersonation=True)
    request = {"subject_token": user.token, "subject_token_type": ACCESS_TOKEN_TYPE, **changes}
    with pytest.raises(InvalidRequest, match=message):
        await server.token(
            service,
            grant_type=TOKEN_EXCHANGE,
            **{name: value for name, value in request.items() if value is not None},
        )


async def test_requested_token_type_access_token_is_honoured(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    body = await _delegate(server, _service(server), user.token, requested_token_type=ACCESS_TOKEN_TYPE)
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE


async def test_a_client_without_the_grant_type_is_unauthorized(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    plain = server.confidential_client()
    with pytest.raises(UnauthorizedClient, match="token-exchange"):
        await _exchange(server, plain, user.token)


async def test_a_public_client_may_not_exchange(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    public = server.web_client(grant_types=("authorization_code", TOKEN_EXCHANGE))
    with pytest.raises(UnauthorizedClient, match="public clients"):
        await _exchange(server, public, user.token)


async def test_only_tokens_issued_to_or_sent_to_the_client_are_exchanged(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    elsewhere = _service(server, subject_audiences=(BILLING,))
    with pytest.raises(InvalidRequest, match="neither issued to this client"):
        await _delegate(server, elsewhere, user.token)
    # A token issued to the exchanging client itself needs no subject audience.
    own = _service(server, subject_audiences=(), impersonation=True)
    body = await _exchange(server, own, await _own_token(server, own), audience=ORDERS_B)
    assert _claims(server, body["access_token"])["sub"] == own.client_id


async def test_an_actor_token_of_another_client_is_refused(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service, other = _service(server), _service(server)
    with pytest.raises(InvalidRequest, match="actor_token was issued to another client"):
        await _exchange(
            server,
            service,
            user.token,
            actor_token=await _own_token(server, other),
            actor_token_type=ACCESS_TOKEN_TYPE,
        )


async def test_a_delegated_actor_token_is_refused(server: ProtocolServer) -> None:
    user = await _signed_in(server)
    service = _service(server, subject_audiences=(API, ORDERS_B))
    delegated = (await _delegate(server, service, user.token, audience=ORDERS_B))["access_token"]
    with pytest.raises(InvalidRequest, match="actor_token is itself delegated"):
        await _exchange(
            server, service, user.token, actor_token=delegated, actor_token_type=ACCESS_TOKEN_TYPE
        )


class ForeignTokens:
    """A second validator through the port, as a trusted external issuer's would be: JWTs named by value."""

    token_types = frozenset({JWT_TOKEN_TYPE})

    def __init__(self, tokens: Mapping[str, PresentedToken]) -> None:
        self.tokens = tokens

    async def validate(self, token: str, token_type: str) -> PresentedToken | None:
        return self.tokens.get(token)


def _foreign(claims: dict[str, Any], audiences: tuple[str, ...] = (API,)) -> PresentedToken:
    return PresentedToken(
        issuer=FOREIGN_ISSUER,
        subject="bob@idp",
        expires_at=int(time.time()) + 300,
        scope=("orders.read",),
        audiences=audiences,
        client_id=None,
        claims={"iss": FOREIGN_ISSUER, "sub": "bob@idp", **claims},
    )


async def test_a_second_validator_plugs_in_and_may_act_is_honoured(server: ProtocolServer) -> None:
    """§4.4: a subject token's may_act names who may act for it; another actor is refused."""
    service = _service(server, audiences=(ORDERS_B,))
    tokens = {
        "foreign-plain": _foreign({}),
        "foreign-may-act": _foreign({"may_act": {"sub": service.client_id}}),
        "foreign-may-act-other": _foreign({"may_act": {"sub": "someone-else"}}),
        "foreign-not-for-us": _foreign({}, audiences=(BILLING,)),
    }
    server.exchangeable.append(ForeignTokens(tokens))

    async def exchange(subject: str) -> dict[str, Any]:
        actor = await _own_token(server, service)
        return await server.token(
            service,
            grant_type=TOKEN_EXCHANGE,
            subject_token=subject,
            subject_token_type=JWT_TOKEN_TYPE,
            actor_token=actor,
            actor_token_type=ACCESS_TOKEN_TYPE,
        )

    body = await exchange("foreign-plain")
    issued = _claims(server, body["access_token"])
    assert issued["sub"] == "bob@idp" and issued["iss"] == ISSUER and GRANT_ID_CLAIM not in issued
    assert issued["aud"] == API  # nothing asked: the client's default audience, not the foreign one's
    assert (await exchange("foreign-may-act"))["issued_token_type"] == ACCESS_TOKEN_TYPE
    with pytest.raises(InvalidRequest, match="may_act does not name this actor"):
        await exchange("foreign-may-act-other")
    with pytest.raises(InvalidRequest, match="neither issued to this client"):
        await exchange("foreign-not-for-us")


async def test_a_chain_longer_than_the_limit_is_refused(server: ProtocolServer) -> None:
    service = _service(server)
    chain: dict[str, Any] = {"sub": "first"}
    for hop in range(MAX_DELEGATION_DEPTH - 1):
        chain = {"sub": f"hop-{hop}", "act": chain}
    server.exchangeable.append(ForeignTokens({"deep": _foreign({"act": chain})}))
    actor = await _own_token(server, service)
    with pytest.raises(InvalidRequest, match="delegation chain"):
        await server.token(
            service,
            grant_type=TOKEN_EXCHANGE,
            subject_token="deep",
            subject_token_type=JWT_TOKEN_TYPE,
            actor_token=actor,
            actor_token_type=ACCESS_TOKEN_TYPE,
        )
