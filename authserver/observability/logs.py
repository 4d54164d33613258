"""Logging for ``authserver serve``: uvicorn's configuration, with credentials kept out of the access log.

The access log prints each request line, query string included. Credentials never belong in a URL
(RFC 6749 §2.3.1, RFC 6750 §2.3), but a misconfigured client may still send ``/token?client_secret=...``:
the server refuses it, and the log must not keep it. The values of credential parameters are replaced by
``[redacted]`` (their names stay, for debugging); everything else in the line is left as it was.
"""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
CREDENTIAL_PARAMETERS = frozenset(
    {
        "access_token",
        "assertion",
        "client_assertion",
        "client_secret",
        "code",
        "code_verifier",
        "id_token",
        "password",
        "refresh_token",
        "secret",
        "token",
    }
)


def redact_query(path_with_query: str) -> str:
    """``path?a=1&client_secret=s`` -> ``path?a=1&client_secret=[redacted]`` (raw query kept otherwise)."""
    path, separator, query = path_with_query.partition("?")
    if not separator:
        return path_with_query
    parts = []
    for part in query.split("&"):
        name, equals, _value = part.partition("=")
        if equals and unquote_plus(name).strip().lower() in CREDENTIAL_PARAMETERS:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class RedactCredentialsInQuery(logging.Filter):
    """For uvicorn's access logger, whose record args are (client, method, path?query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration plus the redacting filter on the access handler (by import
    path, so every worker process builds it too)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_credentials"] = {
        "()": f"{__name__}.{RedactCredentialsInQuery.__name__}"
    }
    config["handlers"]["access"].setdefault("filters", []).append("redact_credentials")
    return config
