"""OAuth 2.0 Token Exchange (RFC 8693): a client trades a token it holds for a narrower access token.

The subject_token says for whom (the issued ``sub``); an optional actor_token says who acts (delegation,
§4.1: the ``act`` claim). What comes out may only narrow: scope within the subject's and the client's,
audiences within the client's token-exchange policy, a lifetime within the subject's. Every refusal of a
presented token is invalid_request (§2.2.2: "the subject_token or actor_token are invalid for any reason,
or are unacceptable based on policy ... MUST be the invalid_request error code"); a refused target is
invalid_target (§2.2.2), a wider scope invalid_scope (RFC 6749 §5.2).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from authserver.protocol.audience import choose_audience
from authserver.protocol.errors import InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from authserver.protocol.exchangeable_tokens import ACCESS_TOKEN_TYPE, PresentedToken, TokenValidator
from authserver.protocol.models import Client, GrantType, TokenExchangePolicy
from authserver.protocol.params import Params, required, single
from authserver.protocol.scopes import OPENID_SCOPES, parse_scope
from authserver.protocol.tokens import GRANT_ID_CLAIM, TokenMinter, token_response

# A delegation chain longer than this is refused: each hop nests one more ``act`` in every later token.
MAX_DELEGATION_DEPTH = 5
_ACTOR_CLAIMS = ("iss", "sub", "client_id")  # what names an actor in act and may_act


class TokenExchangeGrant:
    grant_type = GrantType.TOKEN_EXCHANGE

    def __init__(self, minter: TokenMinter, validators: Sequence[TokenValidator]) -> None:
        self.minter = minter
        self.validators = validators  # in order: the first that reads a token decides

    async def issue(self, params: Params, client: Client) -> dict[str, Any]:
        if client.is_public:
            raise UnauthorizedClient("public clients cannot exchange tokens: they cannot authenticate")
        policy = client.token_exchange or TokenExchangePolicy()
        requested_type = single(params, "requested_token_type")
        if requested_type is not None and requested_type != ACCESS_TOKEN_TYPE:
            # RFC 8693 defines no error for it: an unsupported parameter value (RFC 6749 §5.2).
            raise InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN_TYPE}")
        subject = await self._presented(params, "subject_token", "subject_token_type")
        actor = None
        if single(params, "actor_token") is not None or single(params, "actor_token_type") is not None:
            # §2.1: actor_token_type is REQUIRED with an actor_token and MUST NOT be sent without one.
            actor = await self._presented(params, "actor_token", "actor_token_type")
        self._check_subject(subject, client, policy)
        act = self._act(subject, actor, client, policy)
        scope = _narrowed_scope(single(params, "scope"), subject, client)
        audience = self._audience(params, subject, client, policy)
        ttl = self._ttl(client, subject, actor)

        here = subject.issuer == self.minter.policy.issuer
        # This server's own subject: its grant goes along, so that revoking the grant (a refresh family,
        # a sign-in) revokes what was exchanged from it; the lifetime cap keeps the exchanged token within
        # the time that revocation is remembered (``grant_revocation``).
        grant_id = subject.claims.get(GRANT_ID_CLAIM) if here else None
        auth_time = subject.claims.get("auth_time") if here else None
        extra = {"act": act} if act is not None else None
        token, _ = self.minter.access_token(
            client,
            subject=subject.subject,
            scope=scope,
            audience=audience,
            auth_time=auth_time if isinstance(auth_time, int) else None,
            grant_id=grant_id if isinstance(grant_id, str) else None,
            ttl=ttl,
            extra_claims=extra,
        )
        # §2.2.1: issued_token_type is REQUIRED; no refresh token (the subject's holder refreshes that).
        return {**token_response(token, ttl, scope), "issued_token_type": ACCESS_TOKEN_TYPE}

    async def _presented(self, params: Params, name: str, type_name: str) -> PresentedToken:
        value = required(params, name)
        token_type = required(params, type_name)
        readers = [validator for validator in self.validators if token_type in validator.token_types]
        if not readers:
            # RFC 8693 defines no token-type error (unsupported_token_type is RFC 7009's, for revocation):
            # a token of a type not accepted is unacceptable based on policy, invalid_request (§2.2.2).
            raise InvalidRequest(f"{type_name} '{token_type[:100]}' is not accepted")
        for reader in readers:
            presented = await reader.validate(value, token_type)
            if presented is not None:
                return presented
        raise InvalidRequest(f"the {name} is invalid, expired or revoked")

    @staticmethod
    def _check_subject(subject: PresentedToken, client: Client, policy: TokenExchangePolicy) -> None:
        """A client exchanges the tokens issued to it, and those sent to it as a resource server (whose aud
        its policy names); not any token it came across."""
        if subject.client_id == client.client_id:
            return
        if set(subject.audiences) & set(policy.subject_audiences):
            return
        raise InvalidRequest(
            "the subject_token was neither issued to this client nor sent to one of its "
            "token_exchange.subject_audiences"
        )

    def _act(
        self,
        subject: PresentedToken,
        actor: PresentedToken | None,
        client: Client,
        policy: TokenExchangePolicy,
    ) -> dict[str, Any] | None:
        """The issued token's ``act`` claim (None: none), once the actor may act for the subject."""
        prior = subject.claims.get("act")
        prior = prior if isinstance(prior, Mapping) else None
        if actor is None:
            if not policy.allow_impersonation:
                raise InvalidRequest(
                    "this client may only delegate: send an actor_token (its token_exchange policy does not "
                    "allow impersonation)"
                )
            # §4.4: may_act names who may act for the subject; here the client itself does.
            _check_may_act(
                subject,
                {"iss": self.minter.policy.issuer, "sub": client.client_id, "client_id": client.client_id},
            )
            # A delegated subject stays delegated: impersonating it never hides who acted.
            return dict(prior) if prior is not None else None
        if actor.client_id is not None and actor.client_id != client.client_id:
            raise InvalidRequest("the actor_token was issued to another client")
        if "act" in actor.claims:
            raise InvalidRequest(
                "the actor_token is itself delegated (it has act): send the actor's own token"
            )
        _check_may_act(subject, {"iss": actor.issuer, "sub": actor.subject, "client_id": actor.client_id})
        # §4.1: the current actor outermost, prior actors (the subject's own act) nested within.
        act: dict[str, Any] = {"sub": actor.subject}
        if actor.issuer != self.minter.policy.issuer:
            act["iss"] = actor.issuer
        if actor.client_id is not None:
            act["client_id"] = actor.client_id
        if prior is not None:
            act["act"] = dict(prior)
        if _depth(act) > MAX_DELEGATION_DEPTH:
            raise InvalidRequest(f"the delegation chain would be longer than {MAX_DELEGATION_DEPTH} actors")
        return act

    def _audience(
        self, params: Params, subject: PresentedToken, client: Client, policy: TokenExchangePolicy
    ) -> str | list[str]:
        audiences = [value for value in params.get("audience") or () if value]
        resources = [value for value in params.get("resource") or () if value]
        for resource in resources:
            parts = urlsplit(resource)
            if not parts.scheme or parts.fragment:  # RFC 8707 §2
                raise InvalidTarget("resource must be an absolute URI without a fragment")
        targets = list(dict.fromkeys([*audiences, *resources]))
        for target in targets:
            if target not in policy.audiences:
                # §2.2.2: unwilling to issue a token for this target service.
                raise InvalidTarget(f"this client may not exchange tokens for {target[:200]}")
        if not targets:
            if subject.issuer == self.minter.policy.issuer and subject.audiences:
                targets = list(subject.audiences)  # nothing asked: the subject's own audience, no wider
            else:
                return choose_audience((), client, self.minter.policy.default_audience)
        return targets[0] if len(targets) == 1 else targets

    def _ttl(self, client: Client, subject: PresentedToken, actor: PresentedToken | None) -> int:
        """The client's access-token lifetime, never past the subject's (nor the actor's) expiry."""
        now = int(time.time())
        ends = [subject.expires_at] + ([actor.expires_at] if actor is not None else [])
        ttl = min([self.minter.access_token_ttl(client), *(end - now for end in ends)])
        if ttl < 1:
            raise InvalidRequest("the subject_token or actor_token expires now")
        return ttl


def _narrowed_scope(requested: str | None, subject: PresentedToken, client: Client) -> str:
    """Within the subject token's scope and the scopes this client may use; nothing asked: all of that. A
    subject token without scope (another issuer's identity token) is bounded by the client's scopes alone,
    but never OpenID scopes: its subject is no user of this server."""
    if subject.scope is None:
        allowed = [scope for scope in client.scopes if scope not in OPENID_SCOPES]
    else:
        allowed = [scope for scope in subject.scope if scope in client.scopes]
    asked = parse_scope(requested)
    if not asked:
        return " ".join(allowed)
    widened = [scope for scope in asked if scope not in allowed]
    if widened:
        raise InvalidScope(
            f"scope exceeds the subject_token's or this client's scope: {' '.join(widened)[:200]}"
        )
    return " ".join(asked)


def _check_may_act(subject: PresentedToken, actor: Mapping[str, str | None]) -> None:
    """§4.4: a subject token with may_act may be exchanged only by the party it names (each claim it
    gives must match)."""
    may_act = subject.claims.get("may_act")
    if may_act is None:
        return
    if not isinstance(may_act, Mapping):
        raise InvalidRequest("the subject_token's may_act claim is not an object")
    for claim in _ACTOR_CLAIMS:
        if claim in may_act and may_act[claim] != actor.get(claim):
            raise InvalidRequest("the subject_token's may_act does not name this actor")
    if not any(claim in may_act for claim in _ACTOR_CLAIMS):
        raise InvalidRequest("the subject_token's may_act names no actor this server can match")


def _depth(act: Mapping[str, Any]) -> int:
    depth = 0
    current: Any = act
    while isinstance(current, Mapping):
        depth += 1
        current = current.get("act")
    return depth
