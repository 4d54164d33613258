"""The signing keys a worker uses: loaded from the key file, reloaded when the file changes.

Every worker and replica reads the same file (a mounted Secret in Kubernetes), so all of them publish and
accept the same keys. A reload swaps the whole set at once; a broken file keeps the last good set.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson

from authserver.crypto import jws
from authserver.crypto.keyset_document import active_kids, validate_document

log = logging.getLogger(__name__)

_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e", "kid", "alg", "use")


@dataclass(frozen=True)
class KeySet:
    active_kid: str  # signs access tokens (the primary algorithm)
    signing_keys: dict[str, jwt.PyJWK]  # kid -> private key (signs only when active)
    jwks_json: bytes  # the public JWK set, serialised once per load
    jws_keys: dict[str, jws.JwsKey]  # the same keys, for the lean sign and verify path
    active_kids: dict[str, str]  # algorithm -> kid of its active key (each can sign ID tokens)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> KeySet:
        validate_document(document)
        keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in document["keys"]}
        public = [{m: jwk[m] for m in _PUBLIC_MEMBERS if m in jwk} for jwk in document["keys"]]
        active = active_kids(document)
        # Active keys first, the primary's first of all: naive verifiers that take keys[0] get the one that
        # signs access tokens now.
        public.sort(key=lambda jwk: (jwk["kid"] != document["active_kid"], jwk["kid"] not in active.values()))
        lean = {kid: jws.JwsKey(kid, key.algorithm_name, key.key) for kid, key in keys.items()}
        return cls(document["active_kid"], keys, orjson.dumps({"keys": public}), lean, active)

    @property
    def active(self) -> jwt.PyJWK:
        return self.signing_keys[self.active_kid]

    @property
    def primary_algorithm(self) -> str:
        return self.jws_keys[self.active_kid].alg

    @property
    def id_token_algorithms(self) -> list[str]:
        """The algorithms this set can sign ID tokens with: those with an active key."""
        return sorted(self.active_kids)

    def published_per_algorithm(self) -> dict[str, int]:
        """Published keys of each algorithm that has an active key (a healthy set: two or more each)."""
        counts = dict.fromkeys(self.active_kids, 0)
        for key in self.jws_keys.values():
            if key.alg in counts:
                counts[key.alg] += 1
        return counts

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        return self.jws_keys[self.active_kid].sign(claims, typ)

    def id_token_key(self, algorithm: str) -> jws.JwsKey:
        """The active key of ``algorithm``; the primary active key when this set has none of it (a key set
        written before it held several algorithms): the caller sees ``key.alg`` differ and reports it."""
        kid = self.active_kids.get(algorithm, self.active_kid)
        return self.jws_keys[kid]

    def verify(
        self,
        token: str,
        *,
        typ: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 0,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Decode a token this server signed; raises jwt.InvalidTokenError on anything wrong.

        The algorithm comes from our key (found by ``kid``), never from the token header (no alg
        confusion, no 'none'). ``options`` takes PyJWT's ``verify_aud``, ``verify_exp`` and ``require``.
        """
        options = options or {}
        return jws.verify(
            token,
            self.jws_keys,
            typ=typ,
            issuer=issuer,
            audience=audience,
            verify_aud=options.get("verify_aud", True),
            require=options.get("require", ()),
            verify_exp=options.get("verify_exp", True),
            leeway=leeway,
        )


def _file_signature(path: Path) -> tuple[int, int, int]:
    stat = path.stat()  # follows the symlink Kubernetes swaps on a Secret update
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class KeySetSource:
    """Holds the current KeySet and reloads it from its file when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None
        self.current = self._load()

    def _load(self) -> KeySet:
        signature = _file_signature(self.path)
        document = json.loads(self.path.read_text())
        keyset = KeySet.from_document(document)
        self._signature = signature
        return keyset

    def refresh(self) -> bool:
        """Reload if the file changed; True when a new set was loaded. Keeps the old set on a bad file."""
        try:
            if _file_signature(self.path) == self._signature:
                return False
            self.current = self._load()
        except (OSError, ValueError, jwt.PyJWKError) as error:
            log.error("signing key file %s not reloaded, keeping the previous keys: %s", self.path, error)
            return False
        log.info("signing keys reloaded from %s, active kid %s", self.path, self.current.active_kid)
        return True


def write_document_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write a key file so readers never see half of it; private keys are readable by the owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle)
    os.replace(temporary, path)
