"""Reconcile an OAuthClient: check the AuthServer and its policy, settle the credentials, register them.

Order matters for safety: a generated secret is written to the application's Secret *before* it is
registered, and a client-secret rotation stages the new secret in that Secret first. Whatever step a crash
interrupts, the next reconcile resumes with the secret it already had: no second secret is invented, none
is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authserver.crypto.client_jwks import InvalidJwks, check_public_jwks
from authyard_operator.admin_client import AdminApiError, AdminClient
from authyard_operator.apply import replace_owned
from authyard_operator.clock import rfc3339
from authyard_operator.constants import API_VERSION, GROUP, VERSION
from authyard_operator.endpoints import effective_issuer, endpoint_urls
from authyard_operator.kube.client import Kube, KubeError
from authyard_operator.reconcile.outcome import Event, Outcome
from authyard_operator.reconcile.trust import is_trusted
from authyard_operator.resources import client_secret as cs
from authyard_operator.resources.meta import Names
from authyard_operator.resources.secrets import admin_token
from authyard_operator.retry_after import delay as retry_delay
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.oauthclient import OAuthClientSpec
from authyard_operator.spec.rules import parse_spec
from authyard_operator.status import oauthclient as client_status
from authyard_operator.status.conditions import is_ready
from authyard_operator.tenancy import policy_violations

MIN_SECRET_LENGTH = 43  # what the admin API accepts: as much entropy as a generated 256-bit secret


@dataclass(frozen=True)
class AdminAccess:
    """How the operator reaches an AuthServer's admin API."""

    url: str
    token: str


@dataclass(frozen=True)
class Target:
    """The AuthServer a client registers with, as far as the client needs it."""

    name: str
    namespace: str
    spec: AuthServerSpec
    admin: AdminAccess
    issuer: str
    endpoints: dict[str, str]


class NotReady(Exception):
    """Ready=False with this reason and message; retried after ``retry_after`` (None: after a change)."""

    def __init__(self, reason: str, message: str, retry_after: float | None = 30) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class UnregisterPending(Exception):
    """The AuthServer's admin API did not answer a deletion; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def client_id_for(namespace: str, name: str) -> str:
    """Stable across restarts and re-applies, unique per AuthServer, readable in logs and metrics."""
    return f"{namespace}.{name}"


def authserver_ref(spec: OAuthClientSpec, namespace: str) -> tuple[str, str]:
    """(namespace, name) of the AuthServer the client names; its own namespace when the ref has none."""
    return spec.auth_server_ref.namespace or namespace, spec.auth_server_ref.name


async def _live_authserver(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The AuthServer, unless it is absent or being deleted."""
    authserver = await kube.get(f"{GROUP}/{VERSION}", "AuthServer", namespace, name)
    if authserver is None or authserver["metadata"].get("deletionTimestamp"):
        return None
    return authserver


async def admin_access(kube: Kube, namespace: str, name: str, url_template: str) -> AdminAccess | None:
    """None until the AuthServer's admin Secret exists."""
    admin_secret = await kube.get("v1", "Secret", namespace, Names(name).admin)
    if admin_secret is None:
        return None
    url = url_template.format(name=name, namespace=namespace).rstrip("/")
    return AdminAccess(url, admin_token(admin_secret))


async def find_target(kube: Kube, spec: OAuthClientSpec, namespace: str, admin_url_template: str) -> Target:
    target_namespace, target_name = authserver_ref(spec, namespace)
    authserver = await _live_authserver(kube, target_namespace, target_name)
    where = f"{target_namespace}/{target_name}"
    if authserver is None:
        raise NotReady("AuthServerNotFound", f"AuthServer {where} (spec.authServerRef) does not exist")
    server_spec, problems = parse_spec(AuthServerSpec, authserver.get("spec"), target_name)
    if server_spec is None or problems:
        raise NotReady("AuthServerNotReady", f"AuthServer {where} has an invalid spec")
    violations = policy_violations(server_spec.client_policy, namespace, target_namespace, spec)
    if violations:
        raise NotReady("NotAllowed", "; ".join(violations), retry_after=None)
    if not is_ready(authserver.get("status")):
        raise NotReady("AuthServerNotReady", f"AuthServer {where} is not Ready yet")
    admin = await admin_access(kube, target_namespace, target_name, admin_url_template)
    if admin is None:
        raise NotReady("AuthServerNotReady", f"AuthServer {where} has no admin Secret yet")
    issuer = (authserver.get("status") or {}).get("issuer") or effective_issuer(
        target_name, target_namespace, server_spec
    )
    return Target(
        name=target_name,
        namespace=target_namespace,
        spec=server_spec,
        admin=admin,
        issuer=issuer,
        endpoints=endpoint_urls(issuer),
    )


def service_account_subject(namespace: str, service_account: str) -> str:
    """The ``sub`` of a Kubernetes service-account token."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def registration(
    spec: OAuthClientSpec,
    name: str,
    namespace: str,
    *,
    trusted: bool = False,
    jwks: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The admin API's body for this client; ``trusted``: the AuthServer's spec.consent trusts it;
    ``jwks``: the JWK Set read from authentication.jwksConfigMapRef (PrivateKeyJWT)."""
    body: dict[str, Any] = {
        "name": f"{namespace}/{name}",
        "type": spec.type,
        "grant_types": list(spec.grant_types),
        "scopes": list(spec.scopes),
        "audiences": list(spec.audiences),
        "redirect_uris": list(spec.redirect_uris),
    }
    if spec.post_logout_redirect_uris:  # absent and empty register alike: none
        body["post_logout_redirect_uris"] = list(spec.post_logout_redirect_uris)
    auth = spec.authentication
    if auth.method == "PrivateKeyJWT":
        # RFC 7523 §2.2 / OIDC Core §9: the server holds the public keys only; it drops any former secret.
        body["token_endpoint_auth_method"] = "private_key_jwt"  # noqa: S105 - a method name
        if auth.jwks_uri is not None:
            body["jwks_uri"] = auth.jwks_uri
        else:
            keys = auth.jwks.model_dump()["keys"] if auth.jwks is not None else (jwks or {}).get("keys")
            if not keys:
                raise ValueError("PrivateKeyJWT with jwksConfigMapRef needs the JWK Set read from it")
            body["jwks"] = {"keys": keys}
        if auth.signing_algorithm is not None:
            body["token_endpoint_auth_signing_alg"] = auth.signing_algorithm
    elif auth.method == "ServiceAccount":
        body["token_endpoint_auth_method"] = "workload_identity"  # noqa: S105 - a method name
        body["workload_identity"] = {
            "issuer": auth.effective_issuer,
            "subject": service_account_subject(namespace, auth.service_account_name or ""),
        }
    elif spec.effective_auth_method is not None:
        body["token_endpoint_auth_method"] = spec.effective_auth_method
    if spec.pkce == "OptionalWithNonce":
        body["require_pkce"] = False
    if spec.access_token_ttl:
        body["access_token_ttl"] = spec.access_token_ttl
    if spec.id_token_signing_alg:
        body["id_token_signed_response_alg"] = spec.id_token_signing_alg
    if spec.token_exchange is not None:  # absent from the PUT: the defaults
        body["token_exchange"] = {
            "audiences": list(spec.token_exchange.audiences),
            "subject_audiences": list(spec.token_exchange.subject_audiences),
            "allow_impersonation": spec.token_exchange.allow_impersonation,
        }
    if spec.backchannel_logout is not None:  # absent from the PUT: no back-channel logout any more
        body["backchannel_logout_uri"] = spec.backchannel_logout.uri
        body["backchannel_logout_session_required"] = spec.backchannel_logout.session_required
    if spec.rate_limit is not None:  # absent from the PUT: the AuthServer's default again
        body["rate_limit"] = {
            "requests_per_second": spec.rate_limit.requests_per_second,
            "burst": spec.rate_limit.burst,
        }
    if trusted:  # absent from the PUT is false: a client taken off the AuthServer's list is un-trusted
        body["skip_consent"] = True
    return body


def jwks_config_map(raw_spec: dict[str, Any]) -> str | None:
    """The name of the ConfigMap a (raw, possibly invalid) spec takes its public keys from, if any."""
    auth = raw_spec.get("authentication")
    if not isinstance(auth, dict) or auth.get("method") != "PrivateKeyJWT":
        return None
    reference = auth.get("jwksConfigMapRef")
    name = reference.get("name") if isinstance(reference, dict) else None
    return name if isinstance(name, str) else None


def public_jwks(document: object, where: str) -> dict[str, Any]:
    """``document`` as the JWK Set of public signing keys the server accepts (its own rules), or NotReady."""
    try:
        return {"keys": list(check_public_jwks(document))}
    except InvalidJwks as error:
        raise NotReady("JwksInvalid", f"{where} is not a public JWK Set: {error}", retry_after=None) from None


def check_issuer_trusted(spec: OAuthClientSpec, target: Target) -> None:
    """A ServiceAccount client names a token issuer its AuthServer trusts (spec.workloadIdentity)."""
    auth = spec.authentication
    if auth.method != "ServiceAccount":
        return
    trusted = target.spec.workload_identity.names()
    if auth.effective_issuer not in trusted:
        listed = ", ".join(sorted(trusted)) or "none"
        raise NotReady(
            "IssuerNotTrusted",
            f"AuthServer {target.namespace}/{target.name} does not trust the token issuer "
            f"'{auth.effective_issuer}' (authentication.issuer); it trusts: {listed}",
            retry_after=None,
        )


def token_audience(spec: OAuthClientSpec, target: Target) -> str:
    """The audience a ServiceAccount client's projected token is requested for: the first the trusted
    issuer demands, by default the AuthServer's issuer."""
    wanted = spec.authentication.effective_issuer
    for issuer in target.spec.workload_identity.trusted_issuers:
        if issuer.name == wanted and issuer.audiences:
            return issuer.audiences[0]
    return target.issuer


def auth_method_data(spec: OAuthClientSpec, target: Target) -> dict[str, str]:
    """The non-secret part of the credentials Secret that says how to authenticate."""
    method = spec.authentication.method
    if method == "PrivateKeyJWT":
        return cs.authentication_data("private_key_jwt")
    if method == "ServiceAccount":
        return cs.authentication_data("workload_identity", token_audience(spec, target))
    return cs.authentication_data(spec.effective_auth_method or "client_secret_basic")


class ClientReconciler:
    def __init__(self, kube: Kube, admin: AdminClient, admin_url_template: str) -> None:
        self.kube = kube
        self.admin = admin
        self.admin_url_template = admin_url_template

    async def reconcile(self, body: dict[str, Any], now: datetime) -> Outcome:
        meta = body["metadata"]
        name, namespace, generation = meta["name"], meta["namespace"], int(meta.get("generation") or 1)
        previous = body.get("status") or {}
        spec, problems = parse_spec(OAuthClientSpec, body.get("spec"))
        if spec is None or problems:
            message = "; ".join(map(str, problems))
            return _failed(previous, generation, "InvalidSpec", message, now, retry_after=None)
        client_id = client_id_for(namespace, name)
        try:
            target = await find_target(self.kube, spec, namespace, self.admin_url_template)
            registered, events = await self._settle(body, spec, client_id, target, now)
        except NotReady as not_ready:
            return _failed(
                previous, generation, not_ready.reason, not_ready.message, now, not_ready.retry_after
            )
        except AdminApiError as error:
            reason = "AuthServerUnreachable" if error.retryable else "RegistrationRejected"
            delay = retry_delay(30, error.retry_after) if error.retryable else None
            return _failed(previous, generation, reason, error.message, now, delay)

        secret_spec = spec.effective_secret(name)
        authserver = f"{target.namespace}/{target.name}"
        status = client_status.registered_status(
            generation=generation,
            client_id=client_id,
            secret_name=secret_spec.name if secret_spec else None,
            authserver=authserver,
            last_rotation=registered.get("last_rotation"),
            trusted=registered["trusted"],
            now=now,
            previous=previous,
        )
        if client_status.newly_registered(previous, generation):
            events.append(Event("Normal", "Registered", f"registered as {client_id} with {authserver}"))
        return Outcome(status, events)

    async def unregister(self, body: dict[str, Any], runtime: timedelta, give_up_after: timedelta) -> Outcome:
        """Delete the registration. Never strands the deletion: when the AuthServer (or its namespace) is
        gone, or stays unreachable past ``give_up_after``, the outcome says so and the deletion goes ahead.

        Raises :class:`UnregisterPending` while the AuthServer is unreachable and there is time left."""
        meta = body["metadata"]
        spec, _problems = parse_spec(OAuthClientSpec, body.get("spec"))
        if spec is None:
            return Outcome({})  # never valid, so never registered
        namespace, name = authserver_ref(spec, meta["namespace"])
        admin = None
        try:
            if await _live_authserver(self.kube, namespace, name) is not None:
                admin = await admin_access(self.kube, namespace, name, self.admin_url_template)
        except KubeError as error:  # the API itself: always worth another try
            delay = retry_delay(10, error.retry_after)
            raise UnregisterPending(f"Kubernetes API error: {error}", delay) from None
        if admin is None:
            message = f"AuthServer {namespace}/{name} is gone; nothing to unregister"
            return Outcome({}, [Event("Normal", "AuthServerGone", message)])
        client_id = client_id_for(meta["namespace"], meta["name"])
        try:
            await self.admin.delete(admin.url, admin.token, client_id)
        except AdminApiError as error:
            if runtime < give_up_after:
                raise UnregisterPending(error.message, retry_delay(10, error.retry_after)) from None
            message = f"gave up unregistering {client_id} after {runtime}: {error.message}"
            return Outcome({}, [Event("Warning", "UnregisterAbandoned", message)])
        return Outcome({})

    async def _settle(
        self, body: dict[str, Any], spec: OAuthClientSpec, client_id: str, target: Target, now: datetime
    ) -> tuple[dict[str, Any], list[Event]]:
        meta = body["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        trusted = is_trusted(target.spec.consent, target.namespace, namespace, name, meta.get("labels") or {})
        check_issuer_trusted(spec, target)
        jwks = await self._public_jwks(spec, namespace)
        desired = registration(spec, name, namespace, trusted=trusted, jwks=jwks)
        settled, events = await self._register(meta, spec, desired, client_id, target, now)
        return {**settled, "trusted": trusted}, events

    async def _public_jwks(self, spec: OAuthClientSpec, namespace: str) -> dict[str, Any] | None:
        """The client's public keys when the operator holds them (inline or in a ConfigMap), judged by the
        server's own rules before they are registered; None for a jwksUri or another method."""
        auth = spec.authentication
        if auth.method != "PrivateKeyJWT" or auth.jwks_uri is not None:
            return None
        if auth.jwks is not None:
            return public_jwks(auth.jwks.model_dump(), "authentication.jwks")
        reference = auth.jwks_config_map_ref
        assert reference is not None  # exactly one source (spec rules)
        configmap = await self.kube.get("v1", "ConfigMap", namespace, reference.name)
        where = f"ConfigMap {reference.name} (authentication.jwksConfigMapRef)"
        if configmap is None:
            raise NotReady("JwksConfigMapNotFound", f"{where} does not exist")
        text = (configmap.get("data") or {}).get(reference.key)
        if not text:
            raise NotReady("JwksInvalid", f"{where} has no key '{reference.key}'", retry_after=None)
        try:
            document = json.loads(text)
        except ValueError:
            raise NotReady("JwksInvalid", f"{where} key '{reference.key}' is not JSON", None) from None
        return public_jwks(document, f"{where} key '{reference.key}'")

    async def _register(
        self,
        meta: dict[str, Any],
        spec: OAuthClientSpec,
        desired: dict[str, Any],
        client_id: str,
        target: Target,
        now: datetime,
    ) -> tuple[dict[str, Any], list[Event]]:
        name, namespace = meta["name"], meta["namespace"]
        secret_spec = spec.effective_secret(name)
        if secret_spec is None:  # a public client: nothing to keep secret
            await self.admin.upsert(target.admin.url, target.admin.token, client_id, desired)
            return {}, []
        connection = cs.Connection(target.issuer, target.endpoints["token"], target.endpoints["jwks"])
        info = {
            **cs.connection_data(client_id, connection, list(spec.scopes), list(spec.audiences)),
            **auth_method_data(spec, target),
        }
        existing = await self.kube.get("v1", "Secret", namespace, secret_spec.name)
        if spec.secretless:
            return await self._register_secretless(
                meta, spec, secret_spec.name, existing, desired, info, target
            )
        desired["secret_grace_period"] = secret_spec.rotation_grace_period
        if secret_spec.policy == "RequireExisting":
            return await self._require_existing(
                secret_spec.name, namespace, existing, desired, info, client_id, target
            )

        owner = {"apiVersion": API_VERSION, "kind": "OAuthClient", "metadata": meta}
        if existing is not None and not cs.controlled_by(existing, meta["uid"]):
            raise NotReady(
                "SecretConflict",
                f"Secret {secret_spec.name} exists and is not managed by this OAuthClient; choose another "
                "spec.secret.name, or use policy RequireExisting to supply the secret yourself",
                retry_after=None,
            )
        data = cs.decoded_data(existing)
        annotations = dict((existing or {}).get("metadata", {}).get("annotations") or {})
        current = data.get(cs.CLIENT_SECRET_KEY)
        request = (meta.get("annotations") or {}).get(cs.ROTATE_ANNOTATION)
        events: list[Event] = []

        async def write(secret_data: dict[str, str]) -> dict[str, Any]:
            manifest = cs.render_credentials_secret(
                secret_spec.name, namespace, name, secret_data, annotations, existing
            )
            return await replace_owned(self.kube, owner, manifest, existing)

        if current is None:
            # First registration (or the Secret was deleted): the secret is stored before it is registered.
            current = data.get(cs.STAGED_SECRET_KEY) or cs.generate_client_secret()
            if request:
                annotations[cs.ROTATION_HANDLED_ANNOTATION] = request  # a fresh secret answers any request
            existing = await write(cs.with_secret(info, current))
            events.append(Event("Normal", "SecretCreated", f"wrote credentials to Secret {secret_spec.name}"))
            await self.admin.upsert(
                target.admin.url, target.admin.token, client_id, {**desired, "client_secret": current}
            )
        elif request and request != annotations.get(cs.ROTATION_HANDLED_ANNOTATION):
            staged = data.get(cs.STAGED_SECRET_KEY)
            if staged is None:
                staged = cs.generate_client_secret()
                existing = await write({**cs.with_secret(info, current), cs.STAGED_SECRET_KEY: staged})
            # The server keeps `current` working for the grace period; repeating this call changes nothing.
            await self.admin.upsert(
                target.admin.url, target.admin.token, client_id, {**desired, "client_secret": staged}
            )
            annotations[cs.ROTATION_HANDLED_ANNOTATION] = request
            annotations[cs.LAST_ROTATION_ANNOTATION] = rfc3339(now)
            existing = await write(cs.with_secret(info, staged))
            grace = secret_spec.rotation_grace_period
            events.append(
                Event("Normal", "SecretRotated", f"rotated the client secret; the previous one works {grace}")
            )
        else:
            await self.admin.upsert(
                target.admin.url, target.admin.token, client_id, {**desired, "client_secret": current}
            )
            if data != cs.with_secret(info, current):  # drift, or the AuthServer's endpoints moved
                existing = await write(cs.with_secret(info, current))
        return {"last_rotation": annotations.get(cs.LAST_ROTATION_ANNOTATION)}, events

    async def _register_secretless(
        self,
        meta: dict[str, Any],
        spec: OAuthClientSpec,
        secret_name: str,
        existing: dict[str, Any] | None,
        desired: dict[str, Any],
        info: dict[str, str],
        target: Target,
    ) -> tuple[dict[str, Any], list[Event]]:
        """PrivateKeyJWT or ServiceAccount: the registration first (the server then holds no secret: one
        left from ClientSecret is revoked), then the Secret rewritten whole with connection data only, so no
        secret outlives the switch in either place."""
        name, namespace = meta["name"], meta["namespace"]
        if existing is not None and not cs.controlled_by(existing, meta["uid"]):
            raise NotReady(
                "SecretConflict",
                f"Secret {secret_name} exists and is not managed by this OAuthClient; choose another "
                "spec.secret.name",
                retry_after=None,
            )
        await self.admin.upsert(target.admin.url, target.admin.token, client_id_for(namespace, name), desired)
        data = cs.decoded_data(existing)
        annotations = dict((existing or {}).get("metadata", {}).get("annotations") or {})
        events: list[Event] = []
        if data != info:
            owner = {"apiVersion": API_VERSION, "kind": "OAuthClient", "metadata": meta}
            manifest = cs.render_credentials_secret(secret_name, namespace, name, info, annotations, existing)
            await replace_owned(self.kube, owner, manifest, existing)
            if cs.CLIENT_SECRET_KEY in data or cs.STAGED_SECRET_KEY in data:
                events.append(
                    Event(
                        "Normal",
                        "SecretRemoved",
                        f"authentication.method {spec.authentication.method}: the client secret is revoked "
                        f"and removed from Secret {secret_name}",
                    )
                )
            elif existing is None:
                events.append(
                    Event("Normal", "SecretCreated", f"wrote connection data to Secret {secret_name}")
                )
        return {"last_rotation": annotations.get(cs.LAST_ROTATION_ANNOTATION)}, events

    async def _require_existing(
        self,
        secret_name: str,
        namespace: str,
        existing: dict[str, Any] | None,
        desired: dict[str, Any],
        info: dict[str, str],
        client_id: str,
        target: Target,
    ) -> tuple[dict[str, Any], list[Event]]:
        """The team supplies the secret (e.g. External Secrets): wait for it, never invent one."""
        supplied = cs.decoded_data(existing).get(cs.CLIENT_SECRET_KEY)
        if existing is None or supplied is None:
            raise NotReady(
                "SecretNotFound",
                f"waiting for Secret {secret_name} with key client_secret (policy RequireExisting)",
            )
        if len(supplied) < MIN_SECRET_LENGTH:
            raise NotReady(
                "SecretInvalid",
                f"Secret {secret_name} key client_secret must be at least {MIN_SECRET_LENGTH} characters",
                retry_after=None,
            )
        await self.admin.upsert(
            target.admin.url, target.admin.token, client_id, {**desired, "client_secret": supplied}
        )
        # Add the connection details beside the supplied secret; the Secret itself stays its owner's.
        encoded = cs.encode(info)
        if any((existing.get("data") or {}).get(key) != value for key, value in encoded.items()):
            await self.kube.patch("v1", "Secret", namespace, secret_name, {"data": encoded})
        return {}, []


def _failed(
    previous: dict[str, Any],
    generation: int,
    reason: str,
    message: str,
    now: datetime,
    retry_after: float | None,
) -> Outcome:
    return Outcome(
        client_status.failed_status(generation, reason, message, now, previous),
        [Event("Warning", reason, message)],
        retry_after=retry_after,
        permanent_failure=retry_after is None,
    )


def api_failure(error: KubeError, body: dict[str, Any]) -> Outcome:
    """An API call failed mid-reconcile (a 409: the Secret changed under us, or an API hiccup): retry soon."""
    message = f"Kubernetes API error: {error}"
    return Outcome(
        client_status.api_error_status(body.get("status") or {}),
        [Event("Warning", "ApiError", message)],
        retry_after=retry_delay(5, error.retry_after),
    )
