"""The cheap unverified read of a JWT's header and claims: the same refusals PyJWT makes for a malformed
compact JWS, and the same header and claims for a well-formed one."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.protocol.jwt_preview import MalformedJwt, preview

KEY = ec.generate_private_key(ec.SECP256R1())
TOKEN = jwt.encode({"iss": "https://issuer.example", "sub": "s", "n": [1, 2]}, KEY, "ES256", {"kid": "k1"})


def test_a_well_formed_jwt_reads_as_pyjwt_reads_it() -> None:
    header, claims = preview(TOKEN)
    assert header == jwt.get_unverified_header(TOKEN)
    assert claims == jwt.decode(TOKEN, options={"verify_signature": False})


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        TOKEN.replace(".", "!.", 1),  # outside the base64url alphabet (GHSA-hxm8-2xgr-2p9m)
        TOKEN + "=",  # padding: RFC 7515 §2 base64url carries none
        "e30.W10.",  # the payload is a JSON array, not an object
        "e30.bm90IGpzb24.",  # the payload is not JSON
        "e.e30.",  # a segment of a length base64 never has
        "ééé.e30.",
    ],
)
def test_a_malformed_jwt_is_refused(token: str) -> None:
    with pytest.raises(MalformedJwt):
        preview(token)
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(token, options={"verify_signature": False})
