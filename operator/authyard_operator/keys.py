"""Signing-key rotation schedule: when the key set rotates, and what a reconcile does to it.

The key set document and its lifecycle (active / next / retiring keys) are the auth server's
(``authserver.crypto.keyset_document``); this module only decides *when*. The time of the last rotation is
kept on the Secret (annotation ``authyard.dev/last-rotation``), so an operator restart neither rotates early
nor forgets a due rotation. Missed rotations (operator down for several intervals) collapse into one: the
next key has been published since the previous rotation, so promoting it is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from authserver.crypto import keyset_document
from authyard_operator.clock import rfc3339
from authyard_operator.spec.authserver import Tokens
from authyard_operator.spec.common import seconds_of, timedelta_of

# Added to the access-token lifetime before a retired key is dropped from JWKS: clock skew between the
# server and verifiers, plus verifiers' JWKS caches.
RETENTION_LEEWAY = timedelta(minutes=5)

Action = Literal["kept", "generated", "regenerated", "rotated", "extended", "pruned"]


def retention_seconds(tokens: Tokens) -> float:
    """How long a retired key stays published: every token it signed has expired by then."""
    return seconds_of(tokens.access_token_ttl) + RETENTION_LEEWAY.total_seconds()


def next_rotation(last_rotation: datetime, tokens: Tokens) -> datetime:
    return last_rotation + timedelta_of(tokens.key_rotation_interval)


def rotation_due(last_rotation: datetime, tokens: Tokens, now: datetime) -> bool:
    return now >= next_rotation(last_rotation, tokens)


@dataclass(frozen=True)
class KeyPlan:
    """The key set a reconcile should store, and why."""

    document: dict[str, Any]
    last_rotation: datetime
    action: Action
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.action != "kept"


def active_algorithm(document: dict[str, Any]) -> str | None:
    return next((key.get("alg") for key in document["keys"] if key["kid"] == document["active_kid"]), None)


def algorithms(tokens: Tokens) -> list[str]:
    """Every algorithm the key set needs: access tokens' first, then RS256 (OIDC Core §15.1) and the
    default ID-token algorithm. Each gets its own active, next and retiring keys on one schedule."""
    return keyset_document.algorithms_in_use(tokens.signing_algorithm, tokens.id_token_signing_algorithm)


def plan_keys(
    existing: dict[str, Any] | None, last_rotation: datetime | None, tokens: Tokens, now: datetime
) -> KeyPlan:
    """Keep, rotate, extend, prune or (only when there is none, or it is unusable) generate the key set."""
    algorithm, *others = algorithms(tokens)
    if existing is None:
        return KeyPlan(keyset_document.new_document(algorithm, others), now, "generated")
    try:
        keyset_document.validate_document(existing)
    except ValueError as error:
        # The keys cannot be recovered; a fresh set at least lets the server start. Tokens signed by the old
        # set stop verifying, so this is reported loudly (an Event and the plan's note).
        return KeyPlan(
            keyset_document.new_document(algorithm, others),
            now,
            "regenerated",
            f"unusable key set: {error}",
        )
    retention = retention_seconds(tokens)
    if active_algorithm(existing) != algorithm:
        rotated = keyset_document.rotate(existing, algorithm, now.timestamp(), retention, others)
        return KeyPlan(rotated, now, "rotated", f"signing algorithm changed to {algorithm}")
    last = last_rotation or now  # no record: count from now rather than rotate on sight
    if rotation_due(last, tokens, now):
        rotated = keyset_document.rotate(existing, algorithm, now.timestamp(), retention, others)
        return KeyPlan(rotated, now, "rotated", f"scheduled rotation (every {tokens.key_rotation_interval})")
    missing = keyset_document.missing_algorithms(existing, others)
    if missing:
        # A key set from before several algorithms (or a new idTokenSigningAlgorithm): its keys keep their
        # roles and the schedule stays; the missing kinds get their active and next keys now.
        extended = keyset_document.add_algorithms(existing, missing)
        return KeyPlan(extended, last, "extended", f"added {', '.join(missing)} signing keys")
    pruned = keyset_document.prune(existing, now.timestamp(), retention)
    if pruned != existing:
        return KeyPlan(pruned, last, "pruned", "retired keys whose tokens have expired were removed")
    return KeyPlan(existing, last, "kept")


def keys_status(plan: KeyPlan, tokens: Tokens) -> dict[str, Any]:
    """status.signingKeys"""
    status: dict[str, Any] = {
        "algorithm": active_algorithm(plan.document),
        "activeKid": plan.document["active_kid"],
        "lastRotation": rfc3339(plan.last_rotation),
        "nextRotation": rfc3339(next_rotation(plan.last_rotation, tokens)),
    }
    upcoming = keyset_document.next_kid(plan.document)
    if upcoming:
        status["nextKid"] = upcoming
    kinds = []
    for algorithm, kid in keyset_document.active_kids(plan.document).items():
        kind = {"algorithm": algorithm, "activeKid": kid}
        next_of_kind = keyset_document.next_kid(plan.document, algorithm)
        if next_of_kind:
            kind["nextKid"] = next_of_kind
        kinds.append(kind)
    status["algorithms"] = kinds
    return status
