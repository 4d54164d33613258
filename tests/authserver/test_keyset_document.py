"""The key-set document with several algorithms: each kind its own active, next and retiring keys."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from authserver.crypto import keyset_document as kd
from authserver.crypto.keyset import KeySet

NOW = 1_800_000_000.0
RETENTION = 1200.0


def roles(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per algorithm: its active kid, its next kid and its retiring kids."""
    result: dict[str, dict[str, Any]] = {}
    active = kd.active_kids(document)
    for key in document["keys"]:
        entry = result.setdefault(key["alg"], {"active": None, "next": None, "retiring": set()})
        if key["kid"] == active.get(key["alg"]):
            entry["active"] = key["kid"]
        elif key["kid"] in document["retired_at"]:
            entry["retiring"].add(key["kid"])
        else:
            entry["next"] = key["kid"]
    return result


def test_a_new_document_has_an_active_and_a_next_key_of_each_algorithm() -> None:
    document = kd.new_document("ES256", ["RS256"])
    kd.validate_document(document)
    found = roles(document)
    assert set(found) == {"ES256", "RS256"}
    assert all(entry["active"] and entry["next"] and not entry["retiring"] for entry in found.values())
    assert document["active_kid"] == found["ES256"]["active"]  # the primary signs access tokens


def test_rotation_rotates_every_kind_on_its_own() -> None:
    document = kd.new_document("ES256", ["RS256"])
    before = roles(document)
    rotated = kd.rotate(document, "ES256", NOW, RETENTION, ["RS256"])
    kd.validate_document(rotated)
    after = roles(rotated)
    for alg in ("ES256", "RS256"):
        assert after[alg]["active"] == before[alg]["next"]  # published for a whole interval already
        assert after[alg]["retiring"] == {before[alg]["active"]}
        assert after[alg]["next"] not in {before[alg]["active"], before[alg]["next"]}
    assert rotated["active_kid"] == after["ES256"]["active"]
    # Once their tokens have expired, retiring keys go; active and next keys of both kinds stay.
    pruned = kd.prune(rotated, NOW + RETENTION + 1, RETENTION)
    assert all(not entry["retiring"] for entry in roles(pruned).values())
    assert len(pruned["keys"]) == 4


def test_an_old_one_algorithm_document_loads_and_gains_rs256_without_changing_its_keys() -> None:
    old = kd.new_document("ES256")
    del old["active_kids"]
    kd.validate_document(old)
    assert KeySet.from_document(old).id_token_algorithms == ["ES256"]
    assert kd.missing_algorithms(old, kd.algorithms_in_use("ES256")) == ["RS256"]
    upgraded = kd.add_algorithms(old, ["RS256"])
    kd.validate_document(upgraded)
    assert upgraded["active_kid"] == old["active_kid"] and upgraded["keys"][:2] == old["keys"]
    keyset = KeySet.from_document(upgraded)
    assert keyset.id_token_algorithms == ["ES256", "RS256"]
    assert keyset.id_token_key("RS256").alg == "RS256" and keyset.sign({}, "JWT")
    assert kd.add_algorithms(upgraded, ["RS256"]) == upgraded


def test_a_key_set_without_the_asked_algorithm_signs_with_its_primary_key() -> None:
    old = kd.new_document("ES256")
    keyset = KeySet.from_document(old)
    assert keyset.id_token_key("RS256").kid == old["active_kid"]


def test_dropping_an_algorithm_retires_its_active_key_and_drops_its_unused_next_key() -> None:
    document = kd.new_document("ES256", ["RS256", "EdDSA"])
    eddsa = roles(document)["EdDSA"]
    rotated = kd.rotate(document, "ES256", NOW, RETENTION, ["RS256"])
    kids = {key["kid"] for key in rotated["keys"]}
    assert eddsa["active"] in rotated["retired_at"] and eddsa["next"] not in kids
    assert "EdDSA" not in kd.active_kids(rotated)


def _small_rsa_jwk() -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), as_dict=True)  # noqa: S505 - refused
    jwk.update(kid=kd.jwk_thumbprint(jwk), alg="RS256", use="sig")
    return jwk


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["active_kids"].update(RS256=d["active_kid"]), "RS256 must name one of the keys"),
        (lambda d: d["active_kids"].pop("ES256"), "must name 'active_kid'"),
        (lambda d: d.update(active_kids=[]), "must map each algorithm"),
        (lambda d: d["keys"].append(_small_rsa_jwk()), "at least 2048 bits"),
    ],
)
def test_inconsistent_documents_are_refused_with_a_reason(change: Any, message: str) -> None:
    document = kd.new_document("ES256", ["RS256"])
    change(document)
    with pytest.raises(ValueError, match=message):
        kd.validate_document(document)
