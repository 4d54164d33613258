"""The `authserver` command's chores on a bare machine (embedded SQLite in the working directory)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(
    cwd: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authserver", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **(env or {})},
    )


def test_clients_users_and_keys_from_the_command_line(tmp_path: Path) -> None:
    create_orders = (
        "clients",
        "create",
        "--name",
        "Orders",
        "--client-id",
        "orders",
        "--grant-type",
        "client_credentials",
        "--scope",
        "orders.read",
    )
    created = _run(tmp_path, *create_orders)
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    assert client["client_id"] == "orders" and len(client["client_secret"]) >= 43
    assert client["client_secret"] not in created.stderr
    again = _run(tmp_path, *create_orders)
    assert "client_secret" not in json.loads(again.stdout) and "already exists" in again.stderr

    user = _run(
        tmp_path, "users", "create", "--username", "bob", "--password-stdin", stdin="s3cret-passw0rd\n"
    )
    assert user.returncode == 0 and json.loads(user.stdout)["username"] == "bob"
    duplicate = _run(
        tmp_path, "users", "create", "--username", "bob", "--password-stdin", stdin="another-pass\n"
    )
    assert duplicate.returncode == 1
    short = _run(tmp_path, "users", "create", "--username", "eve", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "8 characters" in short.stderr
    named = _run(tmp_path, "users", "create", "--username", "eve", "--password-stdin", stdin="Eve-is-great\n")
    assert named.returncode == 2 and "must not contain the username" in named.stderr
    # The policy is configurable: AUTHSERVER_PASSWORD_* (here a longer minimum).
    longer = _run(
        tmp_path,
        "users",
        "create",
        "--username",
        "eve",
        "--password-stdin",
        stdin="twelve-chars\n",
        env={"AUTHSERVER_PASSWORD_MIN_LENGTH": "16"},
    )
    assert longer.returncode == 2 and "at least 16 characters" in longer.stderr
    changed = _run(
        tmp_path, "users", "set-password", "--username", "bob", "--password-stdin", stdin="new-passw0rd\n"
    )
    assert changed.returncode == 0
    assert (
        _run(
            tmp_path, "users", "set-password", "--username", "zed", "--password-stdin", stdin="new-passw0rd\n"
        ).returncode
        == 1
    )

    document = json.loads((tmp_path / "authserver-keys.json").read_text())
    assert (tmp_path / "authserver-keys.json").stat().st_mode & 0o077 == 0  # private keys: owner only
    rotated = _run(tmp_path, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    after = json.loads(rotated.stdout)
    published_before = [key["kid"] for key in document["keys"]]
    assert after["active_kid"] != document["active_kid"] and after["active_kid"] in published_before
    # ES256 (access tokens) and RS256 (ID tokens): each rotated to active, next and retiring.
    assert sorted(after["active_kids"]) == ["ES256", "RS256"]
    assert set(after["active_kids"].values()) <= set(published_before)
    assert document["active_kid"] in after["published"] and len(after["published"]) == 6
    for output in (created, user, changed, rotated):
        assert (
            '"d"' not in output.stdout + output.stderr
            and "s3cret-passw0rd" not in output.stdout + output.stderr
        )


def test_an_unwritable_data_directory_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    """A fresh container volume is owned by root while the server runs as an unprivileged user."""
    # Not under tmp_path: its parents are private to the test's user, and the server runs as another one.
    data = Path(tempfile.mkdtemp(prefix="authyard-unwritable-"))
    command = [sys.executable, "-m", "authserver", "serve", "--port", "0"]
    if os.geteuid() == 0:  # root writes anywhere: run as an unprivileged user, as the image does
        data.chmod(0o755)
        command = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "nobody", "--", *command]
    else:
        data.chmod(0o555)
    result = subprocess.run(
        command,
        cwd=data,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(data), "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "permission denied" in result.stderr and str(data) in result.stderr
    assert "Traceback" not in result.stderr
    shutil.rmtree(data)


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    from importlib import metadata

    result = _run(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"authserver {metadata.version('authyard')}"


def test_a_web_client_is_registered_with_its_openid_choices_or_refused_clearly(tmp_path: Path) -> None:
    web = ("clients", "create", "--name", "Web", "--grant-type", "authorization_code", "--scope", "openid")
    web += ("--redirect-uri", "https://app.example/cb")
    created = _run(
        tmp_path,
        *web,
        "--pkce-optional",
        "--id-token-signing-alg",
        "RS256",
        "--token-endpoint-auth-method",
        "client_secret_post",
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    assert client["require_pkce"] is False and client["id_token_signed_response_alg"] == "RS256"
    assert client["token_endpoint_auth_method"] == "client_secret_post"
    assert json.loads(_run(tmp_path, *web).stdout)["require_pkce"] is True  # the default

    public = _run(tmp_path, *web, "--public", "--pkce-optional")
    assert public.returncode == 2 and "Traceback" not in public.stderr
    assert "PKCE" in public.stderr


def test_a_trusted_client_is_registered_with_skip_consent_or_refused_clearly(tmp_path: Path) -> None:
    helper = (
        "clients",
        "create",
        "--name",
        "kubectl",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid",
    )
    helper += ("--redirect-uri", "http://127.0.0.1/callback", "--skip-consent")
    confidential = _run(tmp_path, *helper)
    assert confidential.returncode == 0, confidential.stderr
    assert json.loads(confidential.stdout)["skip_consent"] is True
    public = _run(tmp_path, *helper, "--public")  # a loopback URI any local program can listen at
    assert public.returncode == 2 and "Traceback" not in public.stderr
    assert "skip_consent" in public.stderr and "http://127.0.0.1/callback" in public.stderr


def test_a_backchannel_logout_uri_is_registered_or_refused_clearly(tmp_path: Path) -> None:
    rp = ("clients", "create", "--name", "Portal", "--grant-type", "authorization_code", "--scope", "openid")
    rp += ("--redirect-uri", "https://portal.example.com/cb")
    created = _run(
        tmp_path,
        *rp,
        "--backchannel-logout-uri",
        "https://portal.example.com/bc-logout?realm=1",
        "--backchannel-logout-session-required",
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    assert client["backchannel_logout_uri"] == "https://portal.example.com/bc-logout?realm=1"
    assert client["backchannel_logout_session_required"] is True
    plain_http = _run(tmp_path, *rp, "--backchannel-logout-uri", "http://portal.example.com/bc")
    assert plain_http.returncode == 2 and "Traceback" not in plain_http.stderr
    assert "backchannel_logout_uri" in plain_http.stderr and "loopback" in plain_http.stderr
    alone = _run(tmp_path, *rp, "--backchannel-logout-session-required")
    assert alone.returncode == 2 and "needs a backchannel_logout_uri" in alone.stderr


def test_a_private_key_jwt_client_is_registered_from_a_jwks_file_or_uri(tmp_path: Path) -> None:
    from tests.support.client_assertions import ec_key, public_jwk

    svc = ("clients", "create", "--name", "Signer", "--grant-type", "client_credentials")
    svc += ("--token-endpoint-auth-method", "private_key_jwt")
    key = public_jwk(ec_key(), "k1")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key]}))
    created = _run(
        tmp_path, *svc, "--jwks-file", str(jwks_file), "--token-endpoint-auth-signing-alg", "ES256"
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    assert (
        client["jwks"] == {"keys": [key]} and client["has_secret"] is False and "client_secret" not in client
    )
    assert client["token_endpoint_auth_signing_alg"] == "ES256"
    by_uri = _run(tmp_path, *svc, "--jwks-uri", "https://svc.example.com/jwks.json")
    assert (
        by_uri.returncode == 0
        and json.loads(by_uri.stdout)["jwks_uri"] == "https://svc.example.com/jwks.json"
    )

    jwks_file.write_text(json.dumps({"keys": [{**key, "d": "c2VjcmV0"}]}))
    private = _run(tmp_path, *svc, "--jwks-file", str(jwks_file))
    assert (
        private.returncode == 2
        and "private members (d)" in private.stderr
        and "c2VjcmV0" not in private.stderr
    )
    jwks_file.write_text("{not json")
    garbage = _run(tmp_path, *svc, "--jwks-file", str(jwks_file))
    assert garbage.returncode == 2 and "Traceback" not in garbage.stderr and "as JSON" in garbage.stderr
    neither = _run(tmp_path, *svc)
    assert neither.returncode == 2 and "jwks or jwks_uri" in neither.stderr


def test_a_users_remembered_consents_are_listed_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from authserver.storage.backends import store_for
    from authserver.storage.engine import create_engine
    from tests.conftest import make_settings

    created = _run(
        tmp_path, "users", "create", "--username", "bob", "--password-stdin", stdin="s3cret-pass\n"
    )
    assert created.returncode == 0, created.stderr
    user_id = json.loads(created.stdout)["user_id"]
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'authserver.db'}")

    async def grant() -> None:  # what allowing the consent page stores
        engine = create_engine(settings)
        try:
            store = store_for(engine)
            await store.grant_consent(user_id, "web", ["openid", "profile"], datetime.now(UTC))
            await store.grant_consent(user_id, "cli-tool", ["openid"], datetime.now(UTC))
        finally:
            await engine.dispose()

    asyncio.run(grant())
    listed = _run(tmp_path, "users", "consents", "--username", "bob")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert body["user_id"] == user_id
    assert {(c["client_id"], tuple(c["scopes"])) for c in body["consents"]} == {
        ("web", ("openid", "profile")),
        ("cli-tool", ("openid",)),
    }
    one = _run(tmp_path, "users", "consents", "--username", "bob", "--revoke", "--client-id", "web")
    assert one.returncode == 0, one.stderr
    assert [
        c["client_id"]
        for c in json.loads(_run(tmp_path, "users", "consents", "--username", "bob").stdout)["consents"]
    ] == ["cli-tool"]
    assert (
        _run(tmp_path, "users", "consents", "--username", "bob", "--revoke", "--client-id", "web").returncode
        == 1
    )
    assert _run(tmp_path, "users", "consents", "--username", "bob", "--revoke").returncode == 0
    assert json.loads(_run(tmp_path, "users", "consents", "--username", "bob").stdout)["consents"] == []
    assert _run(tmp_path, "users", "consents", "--username", "zed").returncode == 1


def test_a_user_is_created_with_standard_claims_from_the_command_line(tmp_path: Path) -> None:
    """``users create`` sets the OIDC Core §5.1 claims a directory keeps; the store returns them."""
    import asyncio

    from authserver.protocol.models import User
    from authserver.storage.backends import store_for
    from authserver.storage.engine import create_engine
    from tests.conftest import make_settings

    created = _run(
        tmp_path,
        *("users", "create", "--username", "jane", "--password-stdin", "--name", "Jane Doe"),
        *("--given-name", "Jane", "--family-name", "Doe", "--locale", "fr-FR", "--zoneinfo", "Europe/Paris"),
        *("--phone-number", "+33 1 23 45 67 89", "--phone-number-verified"),
        *("--address-street-address", "1 rue de Rivoli", "--address-locality", "Paris"),
        *("--address-country", "FR"),
        stdin="s3cret-passw0rd\n",
    )
    assert created.returncode == 0, created.stderr
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'authserver.db'}")

    async def read() -> User | None:
        engine = create_engine(settings)
        try:
            return await store_for(engine).get_user_by_username("jane")
        finally:
            await engine.dispose()

    user = asyncio.run(read())
    assert user is not None
    assert (user.given_name, user.family_name, user.locale, user.zoneinfo) == (
        "Jane",
        "Doe",
        "fr-FR",
        "Europe/Paris",
    )
    assert user.phone_number == "+33 1 23 45 67 89" and user.phone_number_verified
    assert user.address == {
        "street_address": "1 rue de Rivoli",
        "locality": "Paris",
        "country": "FR",
    }


def test_a_users_sessions_are_listed_and_ended_and_a_client_gets_post_logout_uris(tmp_path: Path) -> None:
    import asyncio

    from authserver.protocol.sessions import Sessions
    from authserver.storage.backends import store_for
    from authserver.storage.engine import create_engine
    from tests.conftest import make_settings

    created = _run(
        tmp_path, "users", "create", "--username", "carol", "--password-stdin", stdin="s3cret-pass\n"
    )
    assert created.returncode == 0, created.stderr
    user_id = json.loads(created.stdout)["user_id"]
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'authserver.db'}")

    async def sign_in() -> str:  # what the login page does
        engine = create_engine(settings)
        try:
            store = store_for(engine)
            session = await Sessions(store, settings.session_policy).begin(user_id, 1_700_000_000)
            await store.add_session_client(session.session_id, "web", session.created_at)
            return session.session_id
        finally:
            await engine.dispose()

    session_id = asyncio.run(sign_in())
    listed = _run(tmp_path, "users", "sessions", "carol")
    assert listed.returncode == 0, listed.stderr
    [session] = json.loads(listed.stdout)["sessions"]
    assert session["session_id"] == session_id and session["clients"] == ["web"]
    ended = _run(tmp_path, "users", "sessions", "carol", "--revoke")
    assert ended.returncode == 0 and json.loads(ended.stdout)["ended"] == [session_id]
    assert json.loads(_run(tmp_path, "users", "sessions", "carol").stdout)["sessions"] == []
    assert _run(tmp_path, "users", "sessions", "nobody").returncode == 1

    web = ("clients", "create", "--name", "web", "--grant-type", "authorization_code", "--scope", "openid")
    web += ("--redirect-uri", "https://app.example.com/cb")
    registered = _run(tmp_path, *web, "--post-logout-redirect-uri", "https://app.example.com/bye")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["post_logout_redirect_uris"] == ["https://app.example.com/bye"]
    refused = _run(tmp_path, *web, "--post-logout-redirect-uri", "http://app.example.com/bye")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_a_token_exchange_client_is_registered_with_its_policy(tmp_path: Path) -> None:
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    svc = (
        "clients",
        "create",
        "--name",
        "Gateway",
        "--grant-type",
        "client_credentials",
        "--grant-type",
        grant,
    )
    created = _run(
        tmp_path,
        *svc,
        "--exchange-audience",
        "https://orders-b.example.com",
        "--exchange-audience",
        "billing",
        "--exchange-subject-audience",
        "https://api.example.com",
        "--exchange-allow-impersonation",
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    assert client["grant_types"] == ["client_credentials", grant]
    assert client["token_exchange"] == {
        "audiences": ["https://orders-b.example.com", "billing"],
        "subject_audiences": ["https://api.example.com"],
        "allow_impersonation": True,
    }
    plain = json.loads(_run(tmp_path, *svc).stdout)
    assert "token_exchange" not in plain  # the defaults
    without_grant = _run(
        tmp_path,
        "clients",
        "create",
        "--name",
        "x",
        "--grant-type",
        "client_credentials",
        "--exchange-audience",
        "b",
    )
    assert without_grant.returncode == 2 and "Traceback" not in without_grant.stderr
    assert "token_exchange needs the grant type" in without_grant.stderr
