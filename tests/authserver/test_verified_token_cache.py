"""The verified-token cache remembers only signature work: revocation and expiry are checked on every
call, a key set change drops what it verified, and it stays bounded."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from authserver.crypto.keyset import KeySet
from authserver.crypto.keyset_document import new_document
from authserver.protocol.revocation_list import RevocationList
from authserver.protocol.token_inspection import TokenInspector
from tests.support.oauth import basic, register

ISSUER = "https://issuer.example"


class _NoStore:
    async def get_refresh_token(self, _family_id: str, _secret_hash: str) -> None:
        return None

    async def legacy_refresh_family(self, _token_hash: str) -> None:
        return None


def _inspector(keys: list[KeySet], size: int = 8) -> TokenInspector:
    grants = None  # revoking refresh tokens is not what these tests do
    return TokenInspector(lambda: keys[0], _NoStore(), RevocationList(), ISSUER, grants, size)  # type: ignore[arg-type]


def _access_token(keyset: KeySet, lifetime: int = 60, jti: str = "j-1") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "s", "exp": now + lifetime, "iat": now, "jti": jti, "client_id": "c"}
    return keyset.sign(claims, "at+jwt")


async def test_a_cached_token_is_still_revoked_at_once(app_client: httpx.AsyncClient) -> None:
    client_id, body = await register(app_client)
    auth = basic(client_id, body["client_secret"])
    token = (await app_client.post("/token", data={"grant_type": "client_credentials"}, headers=auth)).json()
    access = token["access_token"]
    for _ in range(2):  # the second answer comes from the cache
        assert (await app_client.post("/introspect", data={"token": access}, headers=auth)).json()["active"]
    inspector = app_client.app.state.services.inspector  # type: ignore[attr-defined]
    assert access in inspector._verified
    assert (await app_client.post("/revoke", data={"token": access}, headers=auth)).status_code == 200
    assert (await app_client.post("/introspect", data={"token": access}, headers=auth)).json() == {
        "active": False
    }


def test_revocations_learned_from_other_workers_apply_to_cached_tokens() -> None:
    keyset = KeySet.from_document(new_document("ES256"))
    inspector = _inspector([keyset])
    token = _access_token(keyset)
    assert inspector.active_access_token(token) is not None
    inspector.revocations.add("j-1", datetime.now(UTC).timestamp() + 60)  # what sync_revocations does
    assert inspector.active_access_token(token) is None


def test_expiry_is_checked_on_every_call(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    keyset = KeySet.from_document(new_document("ES256"))
    inspector = _inspector([keyset])
    token = _access_token(keyset, lifetime=30)
    assert inspector.active_access_token(token) is not None and token in inspector._verified
    later = time.time() + 60
    monkeypatch.setattr(time, "time", lambda: later)
    assert inspector.active_access_token(token) is None
    assert inspector.decode_access_token(token, verify_exp=False) is not None  # revocation still finds it


def test_a_new_key_set_drops_what_the_old_one_verified() -> None:
    old = KeySet.from_document(new_document("ES256"))
    keys = [old]
    inspector = _inspector(keys)
    token = _access_token(old)
    assert inspector.active_access_token(token) is not None
    keys[0] = KeySet.from_document(new_document("ES256"))  # the old key is gone from the file
    assert inspector.active_access_token(token) is None


def test_the_cache_is_bounded_and_can_be_off() -> None:
    keyset = KeySet.from_document(new_document("ES256"))
    inspector = _inspector([keyset], size=2)
    tokens = [_access_token(keyset, jti=f"j-{n}") for n in range(3)]
    for token in tokens:
        assert inspector.active_access_token(token) is not None
    assert list(inspector._verified) == tokens[1:]
    off = _inspector([keyset], size=0)
    assert off.active_access_token(tokens[0]) is not None and not off._verified
