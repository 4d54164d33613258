"""Where a client's settings come from: given explicitly, the directory of the Secret the operator writes
for an OAuthClient (one file per key when mounted as a volume), or its ``OAUTH_*`` environment variables
(the same Secret through ``envFrom``).

The Secret's keys: ``client_id``, ``client_secret`` (absent for a secretless client), ``issuer``,
``token_endpoint``, ``jwks_uri``, ``scope``, ``audience`` (both space-separated). ``next_client_secret`` is
the operator's staging key during a client-secret rotation and is never used here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from authyard_client.client_auth import (
    ClientAuthentication,
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    WorkloadIdentity,
)
from authyard_client.errors import ConfigurationError

# Where the kubelet mounts a projected service-account token when the Deployment asks for one.
DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE = Path("/var/run/secrets/tokens/authyard-token")
_ENV_KEYS = {
    "client_id": "OAUTH_CLIENT_ID",
    "client_secret": "OAUTH_CLIENT_SECRET",
    "issuer": "OAUTH_ISSUER",
    "token_endpoint": "OAUTH_TOKEN_URL",
    "jwks_uri": "OAUTH_JWKS_URI",
    "scope": "OAUTH_SCOPE",
    "audience": "OAUTH_AUDIENCE",
}


@dataclass(frozen=True)
class ClientSettings:
    client_id: str
    issuer: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    scope: str = ""
    audiences: tuple[str, ...] = ()
    client_secret: str | None = field(default=None, repr=False)
    # The Secret's client_secret file when read from a mounted directory (re-read for each request).
    client_secret_file: Path | None = None

    @classmethod
    def from_secret_dir(cls, directory: str | Path) -> ClientSettings:
        """The operator's Secret mounted as a volume: one file per key."""
        root = Path(directory)
        values = {key: _read(root / key) for key in _ENV_KEYS}
        secret_file = root / "client_secret"
        return cls._from_values(
            values, f"{root}/client_id", secret_file if values["client_secret"] is not None else None
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        """The operator's Secret through ``envFrom``: ``OAUTH_CLIENT_ID`` and the rest."""
        env = os.environ if environ is None else environ
        values = {key: env.get(name) for key, name in _ENV_KEYS.items()}
        return cls._from_values(values, "OAUTH_CLIENT_ID", None)

    @classmethod
    def _from_values(
        cls, values: Mapping[str, str | None], where: str, secret_file: Path | None
    ) -> ClientSettings:
        client_id = (values["client_id"] or "").strip()
        if not client_id:
            raise ConfigurationError(f"no client id: {where} is missing or empty")
        return cls(
            client_id=client_id,
            issuer=_nonempty(values["issuer"]),
            token_endpoint=_nonempty(values["token_endpoint"]),
            jwks_uri=_nonempty(values["jwks_uri"]),
            scope=" ".join((values["scope"] or "").split()),
            audiences=tuple((values["audience"] or "").split()),
            client_secret=_nonempty(values["client_secret"]),
            client_secret_file=secret_file,
        )

    def authentication(
        self,
        method: str | None = None,
        *,
        private_key_file: str | Path | None = None,
        kid: str | None = None,
        service_account_token_file: str | Path | None = None,
    ) -> ClientAuthentication:
        """The client authentication ``method`` names (``client_secret_basic``, ``client_secret_post``,
        ``private_key_jwt``, ``workload_identity``). Without one: private_key_jwt when a key file is given,
        workload identity when a token file is given, else client_secret_basic when there is a secret."""
        if method is None:
            if private_key_file is not None:
                method = "private_key_jwt"
            elif service_account_token_file is not None:
                method = "workload_identity"
            elif self.client_secret is not None:
                method = "client_secret_basic"
            else:
                raise ConfigurationError(
                    "no client secret, private key or service-account token file: cannot authenticate"
                )
        if method in ("client_secret_basic", "client_secret_post"):
            if self.client_secret is None:
                raise ConfigurationError(f"{method} needs a client secret and these settings have none")
            kind = ClientSecretBasic if method == "client_secret_basic" else ClientSecretPost
            return kind(self.client_id, self.client_secret, secret_file=self.client_secret_file)
        if method == "private_key_jwt":
            if private_key_file is None:
                raise ConfigurationError("private_key_jwt needs private_key_file")
            return PrivateKeyJwt.from_pem_file(self.client_id, private_key_file, kid=kid)
        if method == "workload_identity":
            path = Path(service_account_token_file or DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE)
            return WorkloadIdentity(self.client_id, path)
        raise ConfigurationError(f"unknown client authentication method {method!r}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None


def _nonempty(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None
