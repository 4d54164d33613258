"""A scripted upstream OpenID provider on loopback, for the refusals a correct provider never produces.

A real HTTP server (a thread) with discovery, an authorization endpoint that answers at once (no person to
ask), a token endpoint that checks the client's secret (client_secret_post) and the PKCE verifier, and a
JWK Set. ``defect`` makes its next answers wrong in one named way: an ID token from another issuer, for
another audience, with another nonce, with several audiences and no azp, signed by a key it does not
publish, or an answer whose state (or RFC 9207 ``iss``) is not the one expected. The happy path is tested
against panva's oidc-provider (``tests/interop/oidc_provider``); this stands in only where a provider must
misbehave.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from harness.ports import free_port


class ScriptedProvider:
    def __init__(self, port: int, client_id: str, client_secret: str) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = secrets.token_hex(4)
        self.person: dict[str, Any] = {}
        self.defect: str | None = None
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests = 0

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": query.get("nonce", ""),
            "challenge": query.get("code_challenge", ""),
            "redirect_uri": query["redirect_uri"],
        }
        state = query.get("state", "")
        answer = {"code": code, "state": "not-the-state-sent" if self.defect == "state" else state}
        if self.defect == "response_iss":  # RFC 9207: the answer says it comes from another issuer
            answer["iss"] = "http://127.0.0.1:1/another-issuer"
        if self.defect == "error":
            answer = {"error": "access_denied", "state": state}
        return f"{query['redirect_uri']}?{urlencode(answer)}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        issued = self.codes.pop(form.get("code", ""), None)
        if issued is None or issued["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != issued["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": issued["nonce"],
            **self.person,
        }
        key: Any = self.key
        if self.defect == "issuer":
            claims["iss"] = "http://127.0.0.1:1/another-issuer"
        elif self.defect == "audience":
            claims["aud"] = "another-client"
        elif self.defect == "nonce":
            claims["nonce"] = secrets.token_urlsafe(16)  # an ID token minted for another request
        elif self.defect == "azp":
            claims["aud"] = [self.client_id, "another-client"]
        elif self.defect == "signature":
            key = ec.generate_private_key(ec.SECP256R1())
        id_token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": self.kid})
        return 200, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "id_token": id_token}


def _handler(provider: ScriptedProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {name: values[0] for name, values in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(200, provider.discovery())
            elif parts.path == "/jwks":
                self._json(200, {"keys": [provider.public_jwk()]})
            elif parts.path == "/authorize":
                self.send_response(302)
                self.send_header("Location", provider.authorize(query))
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path == "/token":
                self._json(*provider.token(form))
            else:
                self._json(404, {"error": "not_found"})

    return Handler


@contextlib.contextmanager
def scripted_provider(client_id: str, client_secret: str) -> Iterator[ScriptedProvider]:
    port = free_port()
    provider = ScriptedProvider(port, client_id, client_secret)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(provider))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them) and never answers: a hanging provider."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def closed_port() -> int:
    """A loopback port nobody listens on: a provider that is down (connection refused)."""
    return free_port()
