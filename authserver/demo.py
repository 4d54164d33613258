"""The quick-start demo: a confidential M2M client, a browser client and a user, created once.

Their credentials go to a file readable by its owner only (never to a log line).
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path

from authserver.admin.registration import ClientRegistration, register
from authserver.config import Settings
from authserver.crypto.passwords import hash_password
from authserver.protocol.models import User
from authserver.storage.backends import store_for
from authserver.storage.engine import create_engine

DEMO_CLIENT_ID = "demo-service"
DEMO_WEB_CLIENT_ID = "demo-web"
DEMO_USERNAME = "demo"


def admin_token_from(credentials_file: str) -> str | None:
    path = Path(credentials_file)
    return json.loads(path.read_text()).get("admin_token") if path.exists() else None


async def ensure_demo(settings: Settings, credentials_file: str) -> Path:
    path = Path(credentials_file)
    if os.path.exists(path):  # noqa: ASYNC240 - a one-off check at start-up
        return path
    engine = create_engine(settings)
    try:
        registry = store = store_for(engine)
        secret = secrets.token_urlsafe(32)
        await register(
            registry,
            DEMO_CLIENT_ID,
            ClientRegistration(
                name="Demo service",
                grant_types=["client_credentials"],
                scopes=["demo.read", "demo.write"],
                audiences=["https://api.example.com"],
                client_secret=secret,
            ),
        )
        await register(
            registry,
            DEMO_WEB_CLIENT_ID,
            ClientRegistration(
                name="Demo web app",
                type="public",
                grant_types=["authorization_code", "refresh_token"],
                scopes=["openid", "profile", "email", "demo.read"],
                redirect_uris=["http://127.0.0.1:9999/callback"],
            ),
        )
        password = secrets.token_urlsafe(12)
        if await store.get_user_by_username(DEMO_USERNAME) is None:
            await store.create_user(
                User(
                    user_id=str(uuid.uuid4()),
                    username=DEMO_USERNAME,
                    password_hash=hash_password(password),
                    email="demo@example.com",
                    email_verified=True,
                    name="Demo User",
                )
            )
    finally:
        await engine.dispose()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(
            {
                "client_id": DEMO_CLIENT_ID,
                "client_secret": secret,
                "web_client_id": DEMO_WEB_CLIENT_ID,
                "username": DEMO_USERNAME,
                "password": password,
                "admin_token": secrets.token_urlsafe(32),
            },
            handle,
            indent=2,
        )
    return path
