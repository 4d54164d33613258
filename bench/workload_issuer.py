"""A token issuer for the benchmark's workload-identity rows: one RSA key, its JWK Set served on loopback
(what the API server's /openid/v1/jwks serves), and tokens shaped like projected service-account tokens.

The server is told to trust it through AUTHSERVER_TRUSTED_ISSUERS_FILE with a ``jwks_uri`` (no discovery), as
for another cluster whose keys are published at a known address.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
NAME = "kubernetes"
NAMESPACE = "bench"
SERVICE_ACCOUNT = "bench-workload"
SUBJECT = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
KID = "bench-cluster-key"


class WorkloadIssuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        body = json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def jwks_uri(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/openid/v1/jwks"

    def trusted_issuers_file(self, directory: Path) -> Path:
        path = directory / "trusted-issuers.json"
        issuer = {"name": NAME, "issuer": ISSUER, "jwks_uri": self.jwks_uri}
        path.write_text(json.dumps({"issuers": [issuer]}))
        return path

    def token(self, audience: str, lifetime: int = 3600) -> str:
        """A projected service-account token for the benchmark's workload, valid for ``lifetime`` seconds:
        the same one is sent on every request of a run, as a pod re-sends it until the kubelet rotates it."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": SUBJECT,
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": NAMESPACE, "serviceaccount": {"name": SERVICE_ACCOUNT}},
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
