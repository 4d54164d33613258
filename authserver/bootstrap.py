"""First-start preparation for the embedded default: key file, session secret, schema.

Runs once in the ``serve`` parent before workers fork, so workers never race to create these. In
Kubernetes the operator provides keys and secrets and runs ``migrate`` itself; nothing here is generated.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from authserver.config import Settings
from authserver.crypto.keyset import write_document_atomically
from authserver.crypto.keyset_document import (
    add_algorithms,
    algorithms_in_use,
    missing_algorithms,
    new_document,
    validate_document,
)

log = logging.getLogger(__name__)


class ConfigurationError(Exception):
    """Settings that cannot work; the message says what to set."""


def ensure_signing_keys(settings: Settings) -> None:
    """The key file, generated when missing; a file this server generates and manages (not one mounted
    from a Secret) also gains keys of an algorithm it lacks, e.g. RS256 in a file from before ID tokens
    had their own algorithm."""
    path = settings.signing_keys_file
    algorithms = algorithms_in_use(settings.signing_algorithm, settings.id_token_signing_algorithm)
    if path.exists():
        if settings.generate_signing_keys:
            _add_missing_algorithms(path, algorithms)
        return
    if not settings.generate_signing_keys:
        raise ConfigurationError(
            f"signing key file {path} does not exist; mount it or set AUTHSERVER_GENERATE_SIGNING_KEYS=true"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_document_atomically(path, new_document(algorithms[0], algorithms[1:]))
    log.info("generated %s signing keys in %s", ", ".join(algorithms), path)


def _add_missing_algorithms(path: Path, algorithms: list[str]) -> None:
    try:
        document = json.loads(path.read_text())
        validate_document(document)
    except ValueError:
        return  # the server reports an unusable file when it loads it
    missing = missing_algorithms(document, algorithms)
    if missing:
        write_document_atomically(path, add_algorithms(document, missing))
        log.info("added %s signing keys to %s", ", ".join(missing), path)


def session_secret(settings: Settings) -> bytes:
    """The configured session secret, or one generated once and kept next to the key file."""
    if settings.session_secret is not None:
        value = settings.session_secret.get_secret_value()
        if len(value) < 32:
            raise ConfigurationError("AUTHSERVER_SESSION_SECRET must be at least 32 characters")
        return value.encode()
    path = _session_secret_path(settings)
    if not path.exists():
        if not settings.generate_signing_keys:
            raise ConfigurationError("set AUTHSERVER_SESSION_SECRET (at least 32 characters)")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first; read theirs
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _session_secret_path(settings: Settings) -> Path:
    return settings.signing_keys_file.with_name("authserver-session.secret")


async def prepare(settings: Settings) -> None:
    """Everything a worker needs on disk and in the database before it starts serving."""
    from authserver.migrations.runner import migrate

    ensure_signing_keys(settings)
    session_secret(settings)
    if settings.should_auto_migrate:
        await migrate(settings)
