"""Signing keys and admin credentials: generated once, kept byte for byte, rotated on schedule."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from authyard_operator.constants import LAST_KEY_ROTATION_ANNOTATION
from authyard_operator.keys import (
    RETENTION_LEEWAY,
    keys_status,
    next_rotation,
    plan_keys,
    retention_seconds,
    rotation_due,
)
from authyard_operator.resources.secrets import (
    admin_token,
    read_key_set,
    render_admin_secret,
    render_signing_keys_secret,
)
from authyard_operator.spec.authserver import Tokens

from authserver.crypto import keyset_document
from tests.operator.support import NOW

TOKENS = Tokens()  # 15m access tokens, rotation every 720h, ES256
DAY = timedelta(days=1)


def as_existing(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for an applied Secret (extra metadata included)."""
    return {**manifest, "metadata": {**manifest["metadata"], "uid": "u", "resourceVersion": "7"}}


def document_of(secret: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(secret["data"]["signing-keys.json"]))


def test_schedule() -> None:
    assert retention_seconds(TOKENS) == 15 * 60 + RETENTION_LEEWAY.total_seconds()
    assert next_rotation(NOW, TOKENS) == NOW + timedelta(hours=720)
    assert not rotation_due(NOW, TOKENS, NOW + timedelta(hours=719))
    assert rotation_due(NOW, TOKENS, NOW + timedelta(hours=720))


def test_first_reconcile_generates_a_key_set_with_a_published_next_key() -> None:
    plan = plan_keys(None, None, TOKENS, NOW)
    assert plan.action == "generated" and plan.changed and plan.last_rotation == NOW
    keyset_document.validate_document(plan.document)
    assert keyset_document.next_kid(plan.document) is not None
    status = keys_status(plan, TOKENS)
    assert status["activeKid"] == plan.document["active_kid"] and status["algorithm"] == "ES256"
    assert status["lastRotation"] == "2026-11-22T12:00:00Z"
    assert status["nextRotation"] == "2026-12-22T12:00:00Z"
    assert status["nextKid"] == keyset_document.next_kid(plan.document)


def test_before_the_interval_nothing_changes() -> None:
    document = plan_keys(None, None, TOKENS, NOW).document
    plan = plan_keys(document, NOW, TOKENS, NOW + 29 * DAY)
    assert plan.action == "kept" and not plan.changed and plan.document is document


def test_rotation_promotes_the_published_next_key_and_keeps_the_old_one() -> None:
    document = plan_keys(None, None, TOKENS, NOW).document
    later = NOW + 31 * DAY
    plan = plan_keys(document, NOW, TOKENS, later)
    assert plan.action == "rotated" and plan.last_rotation == later
    assert plan.document["active_kid"] == keyset_document.next_kid(document)  # was published for 30 days
    kids = {key["kid"] for key in plan.document["keys"]}
    assert document["active_kid"] in kids  # still verifies the tokens it signed
    # Both kinds rotated: each one's active key is retiring.
    old_active = keyset_document.active_kids(document)
    assert plan.document["retired_at"] == dict.fromkeys(old_active.values(), later.timestamp())
    assert document["active_kid"] == old_active["ES256"]
    # Once those tokens have expired, a reconcile drops it from JWKS.
    pruned = plan_keys(plan.document, later, TOKENS, later + timedelta(minutes=21))
    assert pruned.action == "pruned" and pruned.last_rotation == later
    assert document["active_kid"] not in {key["kid"] for key in pruned.document["keys"]}
    assert plan_keys(plan.document, later, TOKENS, later + timedelta(minutes=19)).action == "kept"


def test_an_algorithm_change_rotates_at_once() -> None:
    document = plan_keys(None, None, TOKENS, NOW).document
    plan = plan_keys(document, NOW, Tokens(signing_algorithm="EdDSA"), NOW + DAY)
    assert plan.action == "rotated" and "EdDSA" in plan.note
    assert keys_status(plan, TOKENS)["algorithm"] == "EdDSA"


def test_missing_rotation_record_counts_from_now() -> None:
    document = plan_keys(None, None, TOKENS, NOW).document
    plan = plan_keys(document, None, TOKENS, NOW + 365 * DAY)
    assert plan.action == "kept" and plan.last_rotation == NOW + 365 * DAY


@pytest.mark.parametrize("broken", [{}, {"keys": []}, {"active_kid": "x", "keys": [{"kid": "y"}]}])
def test_an_unusable_key_set_is_regenerated_and_said_so(broken: dict[str, Any]) -> None:
    plan = plan_keys(broken, NOW, TOKENS, NOW)
    assert plan.action == "regenerated" and "unusable" in plan.note


def test_signing_keys_secret_is_generated_once_and_kept_byte_for_byte() -> None:
    first, plan = render_signing_keys_secret("auth", "platform", TOKENS, None, NOW)
    assert plan.action == "generated"
    assert first["metadata"]["name"] == "auth-signing-keys"
    assert first["metadata"]["annotations"][LAST_KEY_ROTATION_ANNOTATION] == "2026-11-22T12:00:00Z"
    keyset_document.validate_document(document_of(first))
    again, plan_again = render_signing_keys_secret("auth", "platform", TOKENS, as_existing(first), NOW + DAY)
    assert plan_again.action == "kept"
    assert again == first  # a re-apply changes nothing: same data, same annotation


def test_signing_keys_secret_rotates_on_schedule() -> None:
    first, _ = render_signing_keys_secret("auth", "platform", TOKENS, None, NOW)
    later = NOW + 30 * DAY
    rotated, plan = render_signing_keys_secret("auth", "platform", TOKENS, as_existing(first), later)
    assert plan.action == "rotated"
    assert rotated["metadata"]["annotations"][LAST_KEY_ROTATION_ANNOTATION] == "2026-12-22T12:00:00Z"
    assert document_of(rotated)["active_kid"] == keyset_document.next_kid(document_of(first))


def test_reading_a_key_set() -> None:
    assert read_key_set(None) == (None, None)
    first, _ = render_signing_keys_secret("auth", "platform", TOKENS, None, NOW)
    document, last = read_key_set(first)
    assert document == document_of(first) and last == NOW
    garbage = {"metadata": {}, "data": {"signing-keys.json": base64.b64encode(b"not json").decode()}}
    assert read_key_set(garbage) == ({}, None)
    _, plan = render_signing_keys_secret("auth", "platform", TOKENS, garbage, NOW)
    assert plan.action == "regenerated"


def test_admin_secret_is_generated_once() -> None:
    first = render_admin_secret("auth", "platform", None)
    assert first["metadata"]["name"] == "auth-admin"
    token = admin_token(first)
    session = base64.b64decode(first["data"]["session-secret"]).decode()
    assert len(token) >= 43 and len(session) >= 43 and token != session  # 32 random bytes each
    assert render_admin_secret("auth", "platform", as_existing(first)) == first


def test_admin_secret_fills_only_what_is_missing() -> None:
    first = render_admin_secret("auth", "platform", None)
    partial = {"metadata": {}, "data": {"token": first["data"]["token"], "session-secret": ""}}
    filled = render_admin_secret("auth", "platform", partial)
    assert filled["data"]["token"] == first["data"]["token"]
    assert base64.b64decode(filled["data"]["session-secret"])
    assert filled["data"]["session-secret"] != first["data"]["session-secret"]


def test_the_key_set_holds_each_kind_with_its_own_active_and_next_key() -> None:
    plan = plan_keys(None, None, TOKENS, NOW)
    document = plan.document
    assert keyset_document.active_kids(document).keys() == {"ES256", "RS256"}
    status = keys_status(plan, TOKENS)
    assert status["activeKid"] == document["active_kid"] and status["algorithm"] == "ES256"
    assert {kind["algorithm"]: kind["activeKid"] for kind in status["algorithms"]} == (
        keyset_document.active_kids(document)
    )
    for kind in status["algorithms"]:
        assert kind["nextKid"] == keyset_document.next_kid(document, kind["algorithm"])
        assert kind["nextKid"] != kind["activeKid"]
    # The default ID-token algorithm joins the set when it is a third kind.
    eddsa = plan_keys(None, None, Tokens(id_token_signing_algorithm="EdDSA"), NOW).document
    assert keyset_document.active_kids(eddsa).keys() == {"ES256", "RS256", "EdDSA"}


def test_an_old_one_algorithm_key_set_gains_rs256_and_keeps_its_keys_and_schedule() -> None:
    old = keyset_document.new_document("ES256")
    del old["active_kids"]  # the shape earlier versions wrote
    plan = plan_keys(old, NOW, TOKENS, NOW + DAY)
    assert plan.action == "extended" and "RS256" in plan.note
    assert plan.last_rotation == NOW  # the schedule is not reset
    assert plan.document["active_kid"] == old["active_kid"] and plan.document["keys"][:2] == old["keys"]
    assert keyset_document.active_kids(plan.document).keys() == {"ES256", "RS256"}
    assert plan_keys(plan.document, NOW, TOKENS, NOW + 2 * DAY).action == "kept"
    # The next scheduled rotation then rotates both kinds.
    rotated = plan_keys(plan.document, NOW, TOKENS, NOW + 31 * DAY)
    assert rotated.action == "rotated"
    for algorithm, kid in keyset_document.active_kids(plan.document).items():
        assert keyset_document.active_kids(rotated.document)[algorithm] == keyset_document.next_kid(
            plan.document, algorithm
        )
        assert kid in rotated.document["retired_at"]
