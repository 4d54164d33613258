"""Reconcile an OAuthClient: check the AuthServer and its policy, settle the credentials, register them.

Order matters for safety: a generated secret is written to the application's Secret *before* it is
registered, and a client-secret rotation stages the new secret in that Secret first. Whatever step a crash
interrupts, the next reconcile resumes with the secret it already had: no second secret is invented, none
is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authyard_operator.admin_client import AdminApiError, AdminClient
from authyard_operator.apply import replace_owned
from authyard_operator.clock import rfc3339
from authyard_operator.constants import API_VERSION, GROUP, VERSION
from authyard_operator.endpoints import effective_issuer, endpoint_urls
from authyard_operator.kube.client import Kube
from authyard_operator.reconcile.outcome import Event, Outcome
from authyard_operator.resources import client_secret as cs
from authyard_operator.resources.meta import Names
from authyard_operator.resources.secrets import admin_token
from authyard_operator.retry_after import delay as retry_delay
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.oauthclient import OAuthClientSpec
from authyard_operator.spec.rules import parse_spec
from authyard_operator.status import condition
from authyard_operator.tenancy import policy_violations

MIN_SECRET_LENGTH = 43  # what the admin API accepts: as much entropy as a generated 256-bit secret


@dataclass(frozen=True)
class Target:
    """The AuthServer a client registers with, as far as the client needs it."""

    name: str
    namespace: str
    spec: AuthServerSpec
    admin_url: str
    admin_token: str
    issuer: str
    endpoints: dict[str, str]


class NotReady(Exception):
    """Ready=False with this reason and message; retried after ``retry_after`` (None: after a change)."""

    def __init__(self, reason: str, message: str, retry_after: float | None = 30) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


def client_id_for(namespace: str, name: str) -> str:
    """Stable across restarts and re-applies, unique per AuthServer, readable in logs and metrics."""
    return f"{namespace}.{name}"


def _ready(status: dict[str, Any] | None) -> bool:
    conditions = (status or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def find_target(kube: Kube, spec: OAuthClientSpec, namespace: str, admin_url_template: str) -> Target:
    target_namespace = spec.auth_server_ref.namespace or namespace
    target_name = spec.auth_server_ref.name
    authserver = await kube.get(f"{GROUP}/{VERSION}", "AuthServer", target_namespace, target_name)
    where = f"{target_namespace}/{target_name}"
    if authserver is None or authserver["metadata"].get("deletionTimestamp"):
        raise NotReady("AuthServerNotFound", f"AuthServer {where} (spec.authServerRef) does not exist")
    server_spec, problems = parse_spec(AuthServerSpec, authserver.get("spec"), target_name)
    if server_spec is None or problems:
        raise NotReady("AuthServerNotReady", f"AuthServer {where} has an invalid spec")
    violations = policy_violations(server_spec.client_policy, namespace, target_namespace, spec)
    if violations:
        raise NotReady("NotAllowed", "; ".join(violations), retry_after=None)
    if not _ready(authserver.get("status")):
        raise NotReady("AuthServerNotReady", f"AuthServer {where} is not Ready yet")
    admin_secret = await kube.get("v1", "Secret", target_namespace, Names(target_name).admin)
    if admin_secret is None:
        raise NotReady("AuthServerNotReady", f"AuthServer {where} has no admin Secret yet")
    issuer = (authserver.get("status") or {}).get("issuer") or effective_issuer(
        target_name, target_namespace, server_spec
    )
    return Target(
        name=target_name,
        namespace=target_namespace,
        spec=server_spec,
        admin_url=admin_url_template.format(name=target_name, namespace=target_namespace).rstrip("/"),
        admin_token=admin_token(admin_secret),
        issuer=issuer,
        endpoints=endpoint_urls(issuer),
    )


def registration(spec: OAuthClientSpec, name: str, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"{namespace}/{name}",
        "type": spec.type,
        "grant_types": list(spec.grant_types),
        "scopes": list(spec.scopes),
        "audiences": list(spec.audiences),
        "redirect_uris": list(spec.redirect_uris),
        "token_endpoint_auth_method": spec.effective_auth_method,
    }
    if spec.access_token_ttl:
        body["access_token_ttl"] = spec.access_token_ttl
    return body


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
        status = {
            "observedGeneration": generation,
            "clientId": client_id,
            "secretName": secret_spec.name if secret_spec else None,
            "authServer": f"{target.namespace}/{target.name}",
            "lastRotation": registered.get("last_rotation") or previous.get("lastRotation"),
            "conditions": [
                condition("Ready", True, "Registered", f"registered with AuthServer {target.namespace}/"
                          f"{target.name} as {client_id}", generation, now, previous.get("conditions") or [])
            ],
        }  # fmt: skip
        if previous.get("observedGeneration") != generation or not _ready(previous):
            events.append(
                Event("Normal", "Registered", f"registered as {client_id} with {status['authServer']}")
            )
        return Outcome(status, events)

    async def _settle(
        self, body: dict[str, Any], spec: OAuthClientSpec, client_id: str, target: Target, now: datetime
    ) -> tuple[dict[str, Any], list[Event]]:
        meta = body["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        desired = registration(spec, name, namespace)
        secret_spec = spec.effective_secret(name)
        if secret_spec is None:  # a public client: nothing to keep secret
            await self.admin.upsert(target.admin_url, target.admin_token, client_id, desired)
            return {}, []
        desired["secret_grace_period"] = secret_spec.rotation_grace_period
        connection = cs.Connection(target.issuer, target.endpoints["token"], target.endpoints["jwks"])
        info = cs.connection_data(client_id, connection, list(spec.scopes), list(spec.audiences))
        existing = await self.kube.get("v1", "Secret", namespace, secret_spec.name)
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
                target.admin_url, target.admin_token, client_id, {**desired, "client_secret": current}
            )
        elif request and request != annotations.get(cs.ROTATION_HANDLED_ANNOTATION):
            staged = data.get(cs.STAGED_SECRET_KEY)
            if staged is None:
                staged = cs.generate_client_secret()
                existing = await write({**cs.with_secret(info, current), cs.STAGED_SECRET_KEY: staged})
            # The server keeps `current` working for the grace period; repeating this call changes nothing.
            await self.admin.upsert(
                target.admin_url, target.admin_token, client_id, {**desired, "client_secret": staged}
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
                target.admin_url, target.admin_token, client_id, {**desired, "client_secret": current}
            )
            if data != cs.with_secret(info, current):  # drift, or the AuthServer's endpoints moved
                existing = await write(cs.with_secret(info, current))
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
            target.admin_url, target.admin_token, client_id, {**desired, "client_secret": supplied}
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
    status = {
        **{key: value for key, value in previous.items() if key not in ("conditions", "observedGeneration")},
        "observedGeneration": generation,
        "conditions": [
            condition("Ready", False, reason, message, generation, now, previous.get("conditions") or [])
        ],
    }
    return Outcome(
        status,
        [Event("Warning", reason, message)],
        retry_after=retry_after,
        permanent_failure=retry_after is None,
    )
