"""The lean JWS path: what it signs PyJWT verifies, and it refuses everything PyJWT would (and 'none',
alg confusion, a wrong typ, bad base64, bad signatures, expired or not-yet-valid tokens)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from authserver.crypto import jws
from authserver.crypto.keyset import KeySet
from authserver.crypto.keyset_document import generate_private_jwk

ISSUER = "https://issuer.example"


def _keyset(algorithm: str) -> tuple[KeySet, dict[str, Any]]:
    jwk = generate_private_jwk(algorithm)
    return KeySet.from_document({"active_kid": jwk["kid"], "keys": [jwk], "retired_at": {}}), jwk


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "s", "aud": "api", "exp": now + 60, "iat": now, "nbf": now, "jti": "j"}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _verify(keyset: KeySet, token: str, **options: Any) -> dict[str, Any]:
    return keyset.verify(
        token,
        typ="at+jwt",
        issuer=ISSUER,
        options={"verify_aud": False, "require": ["exp", "iat", "jti", "sub"], **options},
        leeway=5,
    )


def _b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"x") -> str:
    return f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}.{_b64(signature)}"


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_round_trip_and_pyjwt_verifies_what_we_sign(algorithm: str) -> None:
    keyset, jwk = _keyset(algorithm)
    token = keyset.sign(_claims(), "at+jwt")
    assert _verify(keyset, token)["sub"] == "s"
    header = jwt.get_unverified_header(token)
    assert header == {"alg": algorithm, "kid": jwk["kid"], "typ": "at+jwt"}
    public = jwt.PyJWK({m: jwk[m] for m in ("kty", "crv", "x", "y", "n", "e", "kid", "alg") if m in jwk})
    decoded = jwt.decode(token, public.key, algorithms=[algorithm], audience="api", issuer=ISSUER)
    assert decoded["jti"] == "j"


def test_tokens_pyjwt_signs_verify_too() -> None:
    keyset, jwk = _keyset("ES256")
    token = jwt.encode(
        _claims(), keyset.active.key, algorithm="ES256", headers={"kid": jwk["kid"], "typ": "at+jwt"}
    )
    assert _verify(keyset, token)["iss"] == ISSUER


def test_alg_comes_from_our_key_never_from_the_header() -> None:
    keyset, jwk = _keyset("RS256")
    signing_input_claims = _claims()
    # HS256 keyed with the public key (the classic confusion), and 'none'.
    public_pem = keyset.active.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "kid": jwk["kid"], "typ": "at+jwt"}))
    payload = _b64(json.dumps(signing_input_claims))
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(keyset, f"{header}.{payload}.{_b64(mac)}")
    none = _b64(json.dumps({"alg": "none", "kid": jwk["kid"], "typ": "at+jwt"}))
    with pytest.raises(jwt.PyJWTError):
        _verify(keyset, f"{none}.{payload}.")
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(keyset, f"{none}.{payload}.{_b64(b'sig')}")


def test_another_algorithm_of_ours_does_not_pass_for_this_key() -> None:
    es, jwk = _keyset("ES256")
    rs, _ = _keyset("RS256")
    token = rs.sign(_claims(), "at+jwt")
    _, payload, signature = token.split(".")
    header = _b64(json.dumps({"alg": "RS256", "kid": jwk["kid"], "typ": "at+jwt"}))
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(es, f"{header}.{payload}.{signature}")


def test_wrong_typ_unknown_kid_and_crit_are_refused() -> None:
    keyset, jwk = _keyset("ES256")
    id_token = keyset.sign(_claims(), "JWT")
    with pytest.raises(jwt.InvalidTokenError, match="typ"):
        _verify(keyset, id_token)
    other, _ = _keyset("ES256")
    with pytest.raises(jwt.InvalidKeyError):
        _verify(keyset, other.sign(_claims(), "at+jwt"))
    crit = jws.JwsKey(jwk["kid"], "ES256", keyset.active.key)
    crit._headers["at+jwt"] = (
        _b64(json.dumps({"alg": "ES256", "kid": jwk["kid"], "typ": "at+jwt", "crit": ["exp"]})).encode()
        + b"."
    )
    with pytest.raises(jwt.DecodeError, match="critical"):
        _verify(keyset, crit.sign(_claims(), "at+jwt"))


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_bad_signatures_are_refused(algorithm: str) -> None:
    keyset, _ = _keyset(algorithm)
    header, payload, signature = keyset.sign(_claims(), "at+jwt").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[5] ^= 0x01
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(keyset, f"{header}.{payload}.{_b64(bytes(raw))}")
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(keyset, f"{header}.{payload}.{_b64(bytes(raw[:-1]))}")  # wrong length
    tampered = _b64(json.dumps(_claims(sub="someone-else")))
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(keyset, f"{header}.{tampered}.{signature}")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + ".x",  # four segments
        lambda t: t.replace(".", "", 1),  # two segments
        lambda t: t.replace("-", "+").replace("_", "/") + "+/",  # standard base64 alphabet
        lambda t: t.split(".")[0] + "=." + ".".join(t.split(".")[1:]),  # padding
        lambda t: "a" + t,  # a header of impossible length (4n+1)
        lambda t: t[:-1] + "\u00e9",  # not ASCII
        lambda t: " " + t,
        lambda t: "",
    ],
)
def test_malformed_tokens_are_decode_errors(mangle) -> None:  # type: ignore[no-untyped-def]
    keyset, _ = _keyset("ES256")
    with pytest.raises(jwt.PyJWTError):
        _verify(keyset, mangle(keyset.sign(_claims(), "at+jwt")))


def test_header_and_payload_must_be_json_objects() -> None:
    keyset, jwk = _keyset("ES256")
    key = keyset.jws_keys[jwk["kid"]]
    for header in ("[1,2]", "not json"):
        with pytest.raises(jwt.DecodeError):
            _verify(keyset, f"{_b64(header)}.{_b64('{}')}.{_b64(b'x')}")
    header = key._header("at+jwt")
    signing_input = header + _b64("[1]").encode()
    # A validly signed payload that is not an object.
    raw = key.private_key.sign(signing_input, jws._ECDSA_SHA256)
    r, s = jws.decode_dss_signature(raw)
    forged = (
        signing_input + b"." + jws.b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    ).decode()
    with pytest.raises(jwt.DecodeError, match="object"):
        _verify(keyset, forged)


def test_time_claims_with_leeway() -> None:
    keyset, _ = _keyset("ES256")
    now = int(time.time())
    assert _verify(keyset, keyset.sign(_claims(exp=now - 2), "at+jwt"))  # inside the 5 s leeway
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(keyset, keyset.sign(_claims(exp=now - 30), "at+jwt"))
    assert _verify(keyset, keyset.sign(_claims(exp=now - 30), "at+jwt"), verify_exp=False)
    with pytest.raises(jwt.ImmatureSignatureError):
        _verify(keyset, keyset.sign(_claims(nbf=now + 60), "at+jwt"))
    with pytest.raises(jwt.ImmatureSignatureError):
        _verify(keyset, keyset.sign(_claims(iat=now + 60), "at+jwt"))
    with pytest.raises(jwt.DecodeError):
        _verify(keyset, keyset.sign(_claims(exp="tomorrow"), "at+jwt"))
    with pytest.raises(jwt.DecodeError):
        _verify(keyset, keyset.sign(_claims(exp=True), "at+jwt"))


def test_required_claims_issuer_and_audience() -> None:
    keyset, _ = _keyset("ES256")
    with pytest.raises(jwt.MissingRequiredClaimError):
        _verify(keyset, keyset.sign(_claims(jti=None), "at+jwt"))
    with pytest.raises(jwt.MissingRequiredClaimError):
        _verify(keyset, keyset.sign(_claims(iss=None), "at+jwt"))
    with pytest.raises(jwt.InvalidIssuerError):
        _verify(keyset, keyset.sign(_claims(iss="https://evil.example"), "at+jwt"))
    token = keyset.sign(_claims(aud=["api", "other"]), "at+jwt")
    with pytest.raises(jwt.InvalidAudienceError):  # like PyJWT: an audience needs an expected one
        keyset.verify(token, typ="at+jwt", issuer=ISSUER)
    assert keyset.verify(token, typ="at+jwt", issuer=ISSUER, audience="other")["sub"] == "s"
    with pytest.raises(jwt.InvalidAudienceError):
        keyset.verify(token, typ="at+jwt", issuer=ISSUER, audience="nobody")


def _public_key(algorithm: str) -> tuple[Any, jws.VerificationKey]:
    """A private key of ``algorithm``'s type and the VerificationKey of its public half (another party's)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    private: Any
    if algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private, jws.VerificationKey(algorithm, private.public_key())


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256", "EdDSA"])
def test_verify_signed_accepts_what_pyjwt_signs_and_refuses_a_changed_byte(algorithm: str) -> None:
    private, key = _public_key(algorithm)
    token = jwt.encode(_claims(aud=["https://as.example/token", "x"]), private, algorithm)
    audiences = ("https://as.example", "https://as.example/token")
    claims = jws.verify_signed(token, key, issuer=ISSUER, audiences=audiences, require=("exp", "jti"))
    assert claims["sub"] == "s"
    header, _payload, signature = token.split(".")
    tampered = f"{header}.{_b64(json.dumps(_claims(sub='someone-else')))}.{signature}"
    with pytest.raises(jwt.InvalidSignatureError):
        jws.verify_signed(tampered, key, issuer=ISSUER, audiences=audiences)


def test_verify_signed_checks_alg_audience_and_its_format() -> None:
    private, key = _public_key("ES256")
    rs_private, _ = _public_key("RS256")
    with pytest.raises(jwt.InvalidAlgorithmError):  # the header must name the key's algorithm
        jws.verify_signed(jwt.encode(_claims(), rs_private, "RS256"), key, issuer=ISSUER, audiences=("api",))
    for aud, error in [
        ("other", jwt.InvalidAudienceError),
        ([1, "api"], jwt.InvalidAudienceError),  # RFC 7519 §4.1.3: strings only
        (None, jwt.MissingRequiredClaimError),
    ]:
        token = jwt.encode(_claims(aud=aud), private, "ES256")
        with pytest.raises(error):
            jws.verify_signed(token, key, issuer=ISSUER, audiences=("api",), require=("aud",))
    with pytest.raises(jwt.InvalidAudienceError):  # no audience accepted: nothing passes
        jws.verify_signed(jwt.encode(_claims(), private, "ES256"), key, issuer=ISSUER, audiences=())
    with pytest.raises(jwt.ExpiredSignatureError):
        expired = jwt.encode(_claims(exp=int(time.time()) - 30), private, "ES256")
        jws.verify_signed(expired, key, issuer=ISSUER, audiences=("api",), leeway=5)


def test_a_verification_key_refuses_an_algorithm_its_type_does_not_allow() -> None:
    private, _ = _public_key("ES256")
    with pytest.raises(jwt.InvalidKeyError):
        jws.VerificationKey("RS256", private.public_key())
    with pytest.raises(jwt.InvalidKeyError):
        jws.VerificationKey("HS256", private.public_key())
