"""Content of the Secrets the operator generates: the signing key set and the admin credentials.

Both are generated once. These functions take the Secret as it exists in the cluster (or None) and keep its
content: the signing keys change only through the rotation schedule (``keys.plan_keys``), the admin token and
session secret only when missing. The apply layer reads the existing Secret before calling them.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from typing import Any

from authyard_operator.clock import parse_rfc3339, rfc3339
from authyard_operator.constants import LAST_KEY_ROTATION_ANNOTATION
from authyard_operator.keys import KeyPlan, plan_keys
from authyard_operator.resources.configmap import KEYS_FILE_NAME
from authyard_operator.resources.meta import Names, object_meta
from authyard_operator.spec.authserver import Tokens

# Keys within the admin Secret (names, not values).
ADMIN_TOKEN_KEY = "token"  # noqa: S105
SESSION_SECRET_KEY = "session-secret"  # noqa: S105
# 32 random bytes: 256 bits, as the brief asks of every generated credential.
TOKEN_BYTES = 32


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(value: str) -> str:
    return base64.b64decode(value, validate=True).decode()


def _data(secret: dict[str, Any] | None) -> dict[str, str]:
    return dict((secret or {}).get("data") or {})


def read_key_set(secret: dict[str, Any] | None) -> tuple[dict[str, Any] | None, datetime | None]:
    """The key set document and the last rotation time stored on an existing signing-keys Secret.

    A Secret that exists but does not parse yields ``({}, ...)``: present but unusable, which
    ``plan_keys`` reports rather than silently treating it as absent.
    """
    if secret is None:
        return None, None
    annotations = secret.get("metadata", {}).get("annotations") or {}
    try:
        last_rotation = parse_rfc3339(annotations[LAST_KEY_ROTATION_ANNOTATION])
    except (KeyError, ValueError):
        last_rotation = None
    encoded = _data(secret).get(KEYS_FILE_NAME)
    if encoded is None:
        return None, last_rotation
    try:
        document = json.loads(_unb64(encoded))
    except ValueError:
        return {}, last_rotation
    return (document if isinstance(document, dict) else {}), last_rotation


def render_signing_keys_secret(
    name: str, namespace: str, tokens: Tokens, existing: dict[str, Any] | None, now: datetime
) -> tuple[dict[str, Any], KeyPlan]:
    """The signing-keys Secret and the plan behind it (kept, generated, rotated or pruned)."""
    document, last_rotation = read_key_set(existing)
    plan = plan_keys(document, last_rotation, tokens, now)
    if not plan.changed and KEYS_FILE_NAME in _data(existing):
        encoded = _data(existing)[KEYS_FILE_NAME]  # byte for byte: a re-apply must change nothing
    else:
        encoded = _b64(json.dumps(plan.document, sort_keys=True, separators=(",", ":")))
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(
            Names(name).signing_keys,
            namespace,
            name,
            annotations={LAST_KEY_ROTATION_ANNOTATION: rfc3339(plan.last_rotation)},
        ),
        "type": "Opaque",
        "data": {KEYS_FILE_NAME: encoded},
    }
    return manifest, plan


def render_admin_secret(name: str, namespace: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    """The admin API bearer token (the operator registers clients with it) and the session secret."""
    data = _data(existing)
    for key in (ADMIN_TOKEN_KEY, SESSION_SECRET_KEY):
        if not _decodes_to_something(data.get(key)):
            data[key] = _b64(secrets.token_urlsafe(TOKEN_BYTES))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(Names(name).admin, namespace, name),
        "type": "Opaque",
        "data": {key: data[key] for key in (ADMIN_TOKEN_KEY, SESSION_SECRET_KEY)},
    }


def admin_token(secret: dict[str, Any]) -> str:
    """The admin token from the admin Secret (for the operator's own admin API calls)."""
    return _unb64(_data(secret)[ADMIN_TOKEN_KEY])


def _decodes_to_something(value: str | None) -> bool:
    if not value:
        return False
    try:
        return bool(_unb64(value).strip())
    except ValueError:
        return False
