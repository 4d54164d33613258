"""The protocol layer wired as ``web/services.py`` wires it, over ``MemoryStore``: no HTTP, no database.

For unit tests of the grants and endpoints: requests go in as protocol parameters, answers come back as
the protocol's bodies and exceptions (the ``OAuthError`` a client would see as its ``error`` code).
"""

from __future__ import annotations

import functools
import json
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authserver.crypto.client_secrets import hash_secret
from authserver.crypto.keyset import KeySet
from authserver.crypto.keyset_document import new_document
from authserver.crypto.passwords import hash_password
from authserver.protocol.authorization import AuthorizationRequest, validate_authorization_request
from authserver.protocol.authorization_flow import AuthorizationFlow, LoginSession, ReturnToClient
from authserver.protocol.client_assertion import (
    AssertionPolicy,
    ClientAssertionVerifier,
    ClientKeysUnavailable,
)
from authserver.protocol.code_issuance import CodeIssuer
from authserver.protocol.exchangeable_tokens import LocalAccessTokens, TokenValidator
from authserver.protocol.grant_revocation import GrantRevoker
from authserver.protocol.grants.authorization_code import AuthorizationCodeGrant
from authserver.protocol.grants.client_credentials import ClientCredentialsGrant
from authserver.protocol.grants.refresh_token import RefreshTokenGrant
from authserver.protocol.grants.token_exchange import TokenExchangeGrant
from authserver.protocol.introspection_endpoint import IntrospectionEndpoint
from authserver.protocol.models import Client, ClientType, TokenEndpointAuthMethod, User
from authserver.protocol.revocation_endpoint import RevocationEndpoint
from authserver.protocol.revocation_list import RevocationList
from authserver.protocol.token_endpoint import TokenEndpoint
from authserver.protocol.token_inspection import TokenInspector
from authserver.protocol.tokens import TokenMinter, TokenPolicy
from authserver.protocol.usage import UsageCounter
from authserver.protocol.userinfo import UserinfoEndpoint
from tests.support.memory_store import MemoryStore
from tests.support.oauth import PASSWORD, basic, pkce_pair, query_of

ISSUER = "https://auth.example.com"
TOKEN_ENDPOINT = f"{ISSUER}/token"
API = "https://api.example.com"
REDIRECT = "https://app.example.com/callback"


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2id: once per test session


@functools.cache
def signing_keys() -> KeySet:
    return KeySet.from_document(new_document("ES256"))


def form(**params: str | Sequence[str]) -> dict[str, list[str]]:
    """Protocol parameters as the web layer hands them over (every value a list)."""
    return {name: [value] if isinstance(value, str) else list(value) for name, value in params.items()}


@dataclass(frozen=True)
class RegisteredForTest:
    client: Client
    secret: str | None = None

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def authorization(self) -> str | None:
        """The Basic header of a confidential client; None for a public one (it sends client_id alone)."""
        return basic(self.client_id, self.secret)["Authorization"] if self.secret else None

    def credentials(self) -> dict[str, str]:
        return {} if self.secret else {"client_id": self.client_id}


class ProtocolServer:
    def __init__(
        self,
        *,
        access_token_ttl: timedelta = timedelta(minutes=15),
        refresh_token_ttl: timedelta = timedelta(hours=1),
        authorization_code_ttl: timedelta = timedelta(seconds=60),
    ) -> None:
        self.store = MemoryStore()
        self.keys = signing_keys()
        self.policy = TokenPolicy(
            issuer=ISSUER,
            access_token_ttl=access_token_ttl,
            refresh_token_ttl=refresh_token_ttl,
            authorization_code_ttl=authorization_code_ttl,
            default_audience=ISSUER,
        )
        self.minter = TokenMinter(self.policy, lambda: self.keys)
        lookup = self.store.get_client
        self.revocations = RevocationList()
        self.grants = GrantRevoker(self.store, self.minter, self.revocations)
        # private_key_jwt: what a client's jwks_uri serves (by client_id; an exception: it cannot be had),
        # what it will serve once fetched again, and each fetch's refresh flag.
        self.served_keys: dict[str, list[dict[str, Any]] | ClientKeysUnavailable] = {}
        self.key_fetches: list[bool] = []
        self._fetched_keys: dict[str, list[dict[str, Any]]] = {}
        self.assertions = ClientAssertionVerifier(
            AssertionPolicy(audiences={ISSUER, TOKEN_ENDPOINT}),
            self._client_keys,
            self.store.spend_client_assertion,
        )
        self.inspector = TokenInspector(lambda: self.keys, self.store, self.revocations, ISSUER, self.grants)
        # Token exchange reads this server's access tokens, then any validator a test adds (a trusted issuer).
        self.exchangeable: list[TokenValidator] = [LocalAccessTokens(self.inspector)]
        self.usage = UsageCounter()  # what the token endpoint counts per client (``protocol.usage``)
        self.token_endpoint = TokenEndpoint(
            [
                ClientCredentialsGrant(self.minter),
                AuthorizationCodeGrant(self.minter, self.store, self.grants),
                RefreshTokenGrant(self.minter, self.store, self.grants),
                TokenExchangeGrant(self.minter, self.exchangeable),
            ],
            lookup,
            self.assertions,
            self.usage,
        )
        self.introspection = IntrospectionEndpoint(self.inspector, lookup, self.assertions)
        self.revocation = RevocationEndpoint(self.inspector, lookup, self.assertions)
        self.userinfo = UserinfoEndpoint(self.inspector, self.store)
        self.codes = CodeIssuer(self.policy, self.store)
        self.flow = AuthorizationFlow(self.store, self.codes)

    async def _client_keys(self, client: Client, refresh: bool) -> Sequence[Mapping[str, Any]]:
        """The ``ClientKeys`` port as ``web.client_jwks`` serves it: inline keys, or a jwks_uri's set
        fetched once and again only when a refresh is asked (``key_fetches`` records each fetch's flag)."""
        if client.jwks is not None:
            return list(json.loads(client.jwks)["keys"])
        if not refresh and client.client_id in self._fetched_keys:
            return self._fetched_keys[client.client_id]
        self.key_fetches.append(refresh)
        served = self.served_keys.get(
            client.client_id, ClientKeysUnavailable("its jwks_uri answered HTTP 404")
        )
        if isinstance(served, ClientKeysUnavailable):
            raise served
        self._fetched_keys[client.client_id] = list(served)
        return self._fetched_keys[client.client_id]

    # Registrations
    def confidential_client(self, **fields: Any) -> RegisteredForTest:
        secret = secrets.token_urlsafe(32)
        values: dict[str, Any] = {
            "client_id": f"svc-{uuid.uuid4().hex[:8]}",
            "name": "Orders service",
            "client_type": ClientType.CONFIDENTIAL,
            "grant_types": ("client_credentials",),
            "scopes": ("orders.read", "orders.write"),
            "audiences": (API,),
            "secret_hash": hash_secret(secret),
            **fields,
        }
        return RegisteredForTest(self.store.add_client(Client(**values)), secret)

    def web_client(self, *, public: bool = True, **fields: Any) -> RegisteredForTest:
        """A client of the authorization_code grant (with refresh tokens), public unless told otherwise."""
        values: dict[str, Any] = {
            "grant_types": ("authorization_code", "refresh_token"),
            "scopes": ("openid", "profile", "email", "orders.read"),
            "redirect_uris": (REDIRECT,),
            **fields,
        }
        if not public:
            return self.confidential_client(**values)
        values.setdefault("client_id", f"web-{uuid.uuid4().hex[:8]}")
        values.setdefault("name", "Web app")
        values.setdefault("audiences", (API,))
        client = Client(
            client_type=ClientType.PUBLIC, token_endpoint_auth_method=TokenEndpointAuthMethod.NONE, **values
        )
        return RegisteredForTest(self.store.add_client(client))

    async def user(self) -> User:
        user = User(
            user_id=str(uuid.uuid4()),
            username=f"alice-{uuid.uuid4().hex[:6]}",
            password_hash=_password_hash(),
            email="alice@example.com",
            email_verified=True,
            name="Alice Example",
        )
        await self.store.create_user(user)
        return user

    # Endpoints
    async def token(self, client: RegisteredForTest, **params: str | Sequence[str]) -> dict[str, Any]:
        result = await self.token_endpoint.handle(
            form(**client.credentials(), **params), client.authorization
        )
        return result.body

    async def introspect(self, client: RegisteredForTest, **params: str) -> dict[str, Any]:
        return await self.introspection.handle(form(**client.credentials(), **params), client.authorization)

    async def revoke(self, client: RegisteredForTest, **params: str) -> None:
        await self.revocation.handle(form(**client.credentials(), **params), client.authorization)

    # The authorization flow
    async def authorization_request(
        self, client: RegisteredForTest, challenge: str, **params: str
    ) -> AuthorizationRequest:
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid profile orders.read",
            "state": "st-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "nonce": "n-1",
            **params,
        }
        return await validate_authorization_request(
            form(**query), self.store.get_client, ISSUER, ISSUER, lambda: self.keys
        )

    @staticmethod
    def session(user: User) -> LoginSession:
        """``user`` signed in a moment ago (signing in with a password is ``AuthorizationFlow.sign_in``'s
        own test: the KDF is slow on purpose)."""
        return LoginSession(user.user_id, user.username, int(time.time()) - 5)

    async def authorize(self, client: RegisteredForTest, user: User, **params: str) -> tuple[str, str]:
        """Sign ``user`` in and consent for ``client``: (the code from the redirect, the PKCE verifier)."""
        verifier, challenge = pkce_pair()
        request = await self.authorization_request(client, challenge, **params)
        step = await self.flow.answer_consent(request, self.session(user), allowed=True)
        assert isinstance(step, ReturnToClient), step
        query = query_of(step.location)
        assert query["state"] == request.state and query["iss"] == ISSUER
        return query["code"], verifier

    async def redeem(
        self, client: RegisteredForTest, code: str, verifier: str, **params: str
    ) -> dict[str, Any]:
        return await self.token(
            client,
            grant_type="authorization_code",
            code=code,
            code_verifier=verifier,
            redirect_uri=REDIRECT,
            **params,
        )
