"""The ``authserver`` command: serve, migrate, and the admin chores of a bare-machine install."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from authserver.bootstrap import ConfigurationError, prepare
from authserver.config import Settings, load_settings
from authserver.serving import connection_shares

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from authserver.admin.registration import TokenExchangeRegistration

log = logging.getLogger("authserver")
T = TypeVar("T")


def _settings() -> Settings:
    return load_settings()


def cmd_serve(args: argparse.Namespace) -> int:
    if not os.environ.get("AUTHSERVER_ISSUER"):
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
        os.environ["AUTHSERVER_ISSUER"] = f"http://{host}:{args.port}"
    settings = _settings()
    asyncio.run(prepare(settings))
    # Migrated once here; the workers must not race to do it again.
    os.environ["AUTHSERVER_DB_AUTO_MIGRATE"] = "false"
    os.environ["AUTHSERVER_WORKERS"] = str(args.workers)  # each worker sizes its KDF threads from it
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authserver-metrics-")
    from authserver.serving.balanced_loop import UVICORN_LOOP

    loop = "uvloop"
    shares_directory = None
    if args.workers > 1 and settings.balance_connections:  # serving/balanced_loop.py
        shares_directory = connection_shares.create()
        os.environ[connection_shares.ENV] = shares_directory
        loop = UVICORN_LOOP
    try:
        _run_uvicorn(args, settings, loop)
    finally:
        if shares_directory is not None:
            shutil.rmtree(shares_directory, ignore_errors=True)
    return 0


def _run_uvicorn(args: argparse.Namespace, settings: Settings, loop: str) -> None:
    import uvicorn

    from authserver.observability.logs import uvicorn_log_config
    from authserver.serving.http_protocol import UVICORN_HTTP

    uvicorn.run(
        "authserver.web.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop=loop,
        http=UVICORN_HTTP,  # httptools, each response's head in its body's write
        log_level=settings.log_level,
        log_config=uvicorn_log_config(),  # credentials sent in a URL never reach the access log
        access_log=args.access_log,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout.total_seconds()),
    )


def cmd_migrate(_args: argparse.Namespace) -> int:
    from authserver.migrations.runner import migrate

    asyncio.run(migrate(_settings()))
    print("database schema is up to date")
    return 0


async def _with_engine(action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from authserver.storage.engine import create_engine

    settings = _settings()
    await prepare(settings)
    engine = create_engine(settings)
    try:
        return await action(engine)
    finally:
        await engine.dispose()


def cmd_clients_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from authserver.admin.registration import (
        ClientRegistration,
        ClientView,
        RateLimitRegistration,
        WorkloadIdentity,
        register,
    )
    from authserver.crypto.client_secrets import generate_client_id
    from authserver.protocol.errors import InvalidRequest
    from authserver.protocol.store import WorkloadTaken
    from authserver.storage.backends import store_for

    if args.rate_limit_burst is not None and args.rate_limit is None:
        print("invalid client: --rate-limit-burst needs --rate-limit", file=sys.stderr)
        return 2
    if args.rate_limit is not None and args.rate_limit_burst is None:
        args.rate_limit_burst = max(1, math.ceil(2 * args.rate_limit))
    jwks = None
    if args.jwks_file is not None:
        try:
            jwks = json.loads(args.jwks_file.read_text())
        except (OSError, ValueError) as error:
            print(
                f"invalid client: cannot read {args.jwks_file} as JSON ({type(error).__name__})",
                file=sys.stderr,
            )
            return 2
    try:
        registration = ClientRegistration(
            name=args.name,
            type="public" if args.public else "confidential",
            grant_types=args.grant_type,
            scopes=args.scope or [],
            audiences=args.audience or [],
            redirect_uris=args.redirect_uri or [],
            post_logout_redirect_uris=args.post_logout_redirect_uri or [],
            token_endpoint_auth_method=args.token_endpoint_auth_method,
            require_pkce=not args.pkce_optional,
            id_token_signed_response_alg=args.id_token_signing_alg,
            skip_consent=args.skip_consent,
            backchannel_logout_uri=args.backchannel_logout_uri,
            backchannel_logout_session_required=args.backchannel_logout_session_required,
            jwks=jwks,
            jwks_uri=args.jwks_uri,
            token_endpoint_auth_signing_alg=args.token_endpoint_auth_signing_alg,
            token_exchange=_token_exchange_policy(args),
            workload_identity=WorkloadIdentity(issuer=args.workload_issuer, subject=args.workload_subject)
            if args.workload_issuer is not None or args.workload_subject is not None
            else None,
            rate_limit=None
            if args.rate_limit is None
            else RateLimitRegistration(requests_per_second=args.rate_limit, burst=args.rate_limit_burst),
        )
    except ValidationError as error:
        for problem in error.errors():
            print(f"invalid client: {problem['msg']}", file=sys.stderr)
        return 2
    client_id = args.client_id or generate_client_id()
    trusted = [issuer.name for issuer in _settings().trusted_issuers]
    try:
        result = asyncio.run(
            _with_engine(
                lambda engine: register(store_for(engine), client_id, registration, trusted_issuers=trusted)
            )
        )
    except InvalidRequest as error:
        print(f"invalid client: {error.description}", file=sys.stderr)
        return 2
    except WorkloadTaken:
        print("invalid client: another client is registered for this workload", file=sys.stderr)
        return 2
    if not result.created:
        print(f"client {client_id} already exists; its secret is unchanged", file=sys.stderr)
    view = ClientView.of(result.registered, result.generated_secret)
    print(json.dumps(view.model_dump(exclude_none=True), indent=2))
    return 0


def _token_exchange_policy(args: argparse.Namespace) -> TokenExchangeRegistration | None:
    """The --exchange-* flags as the registration's token_exchange (None: none given, the defaults)."""
    from authserver.admin.registration import TokenExchangeRegistration

    if not (args.exchange_audience or args.exchange_subject_audience or args.exchange_allow_impersonation):
        return None
    return TokenExchangeRegistration(
        audiences=args.exchange_audience or [],
        subject_audiences=args.exchange_subject_audience or [],
        allow_impersonation=args.exchange_allow_impersonation,
    )


def _password_from_stdin(username: str, email: str | None) -> str | None:
    """The password on standard input if the password policy accepts it for this account; else None (said
    on stderr)."""
    from authserver.protocol.password_policy import WeakPassword

    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("a password is required on standard input (--password-stdin)", file=sys.stderr)
        return None
    try:
        _settings().password_policy.check(password, username, email)
    except WeakPassword as problem:
        print(problem, file=sys.stderr)
        return None
    return password


def cmd_users_set_password(args: argparse.Namespace) -> int:
    from authserver.crypto.passwords import hash_password
    from authserver.protocol.models import User
    from authserver.storage.backends import store_for

    user: User | None = asyncio.run(
        _with_engine(lambda engine: store_for(engine).get_user_by_username(args.username))
    )
    if user is None:
        print(f"no user {args.username}", file=sys.stderr)
        return 1
    password = _password_from_stdin(user.username, user.email)
    if password is None:
        return 2
    password_hash = hash_password(password)
    if not asyncio.run(
        _with_engine(lambda engine: store_for(engine).set_password(args.username, password_hash))
    ):
        print(f"no user {args.username}", file=sys.stderr)
        return 1
    print(json.dumps({"username": args.username, "password": "changed"}))
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    from authserver.crypto.passwords import hash_password
    from authserver.protocol.models import User
    from authserver.storage.backends import store_for

    password = _password_from_stdin(args.username, args.email)
    if password is None:
        return 2
    user = User(
        user_id=str(uuid.uuid4()),
        username=args.username,
        password_hash=hash_password(password),
        email=args.email,
        email_verified=bool(args.email),
        name=args.name,
        given_name=args.given_name,
        family_name=args.family_name,
        locale=args.locale,
        zoneinfo=args.zoneinfo,
        phone_number=args.phone_number,
        phone_number_verified=bool(args.phone_number) and args.phone_number_verified,
        address=_address(args),
        groups=tuple(dict.fromkeys(group.strip() for group in args.group or () if group.strip())),
    )

    async def create(engine: AsyncEngine) -> bool:
        return await store_for(engine).add_user(user)

    if not asyncio.run(_with_engine(create)):
        print(f"user {args.username} already exists", file=sys.stderr)
        return 1
    created = {"user_id": user.user_id, "username": user.username}
    print(json.dumps({**created, "groups": list(user.groups)} if user.groups else created))
    return 0


def _address(args: argparse.Namespace) -> dict[str, str] | None:
    """OIDC Core §5.1.1's address members given with ``--address-*``; None when none was."""
    members = ("formatted", "street_address", "locality", "region", "postal_code", "country")
    address = {name: getattr(args, f"address_{name}") for name in members if getattr(args, f"address_{name}")}
    return address or None


def cmd_users_consents(args: argparse.Namespace) -> int:
    """List a user's remembered consents, or forget them (``--revoke``, one client's with ``--client-id``)."""
    from authserver.admin.consents import revoke_user_consents, user_consents
    from authserver.storage.backends import store_for

    async def run(engine: AsyncEngine) -> int:
        store = store_for(engine)
        if args.revoke:
            revoked = await revoke_user_consents(store, args.username, args.client_id)
            if revoked is None or revoked is False:
                print(f"no consent of {args.username} to revoke", file=sys.stderr)
                return 1
            print(json.dumps({"username": args.username, "revoked": args.client_id or "all"}))
            return 0
        found = await user_consents(store, args.username)
        if found is None:
            print(f"no user {args.username}", file=sys.stderr)
            return 1
        print(found.model_dump_json(indent=2))
        return 0

    if args.client_id and not args.revoke:
        print("--client-id goes with --revoke", file=sys.stderr)
        return 2
    return asyncio.run(_with_engine(run))


def cmd_users_sessions(args: argparse.Namespace) -> int:
    """List a user's sign-in sessions, or end them all (``--revoke``: their refresh tokens revoked)."""
    import jwt

    from authserver.admin.sessions import end_user_sessions, user_sessions
    from authserver.crypto.keyset import KeySetSource
    from authserver.protocol.sessions import Sessions
    from authserver.storage.backends import store_for
    from authserver.web.backchannel_delivery import BackchannelLogout
    from authserver.web.services import backchannel_logout_for, token_minter

    async def run(engine: AsyncEngine) -> int:
        store = store_for(engine)
        settings = _settings()
        if args.revoke:
            # The RPs hear of each end as from a server worker: logout tokens sent before the command exits,
            # within the retry deadline (OpenID Connect Back-Channel Logout 1.0 §2.5).
            backchannel: BackchannelLogout | None = None
            try:
                minter = token_minter(settings, KeySetSource(settings.signing_keys_file))
            except (OSError, ValueError, jwt.PyJWKError) as error:
                print(f"no back-channel logout tokens will be sent (signing keys: {error})", file=sys.stderr)
            else:
                backchannel = backchannel_logout_for(settings, store.get_client, minter)
                backchannel.start()
            listeners = [backchannel] if backchannel else []
            sessions = Sessions(store, settings.session_policy, listeners)
            ended = await end_user_sessions(store, sessions, args.username)
            if backchannel is not None:
                await backchannel.close(grace=settings.backchannel_logout_retry_deadline.total_seconds())
            if ended is None:
                print(f"no user {args.username}", file=sys.stderr)
                return 1
            print(json.dumps({"username": args.username, "ended": [e.session_id for e in ended]}))
            return 0
        sessions = Sessions(store, settings.session_policy)
        found = await user_sessions(store, sessions, args.username)
        if found is None:
            print(f"no user {args.username}", file=sys.stderr)
            return 1
        print(found.model_dump_json(indent=2))
        return 0

    return asyncio.run(_with_engine(run))


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from authserver.crypto.keyset import write_document_atomically
    from authserver.crypto.keyset_document import algorithms_in_use, rotate

    settings = _settings()
    path = settings.signing_keys_file
    document = json.loads(path.read_text())
    retention = settings.access_token_ttl.total_seconds() + 300 if args.retention is None else args.retention
    primary, *others = algorithms_in_use(settings.signing_algorithm, settings.id_token_signing_algorithm)
    rotated = rotate(document, primary, time.time(), retention, others)
    write_document_atomically(path, rotated)
    published = [key["kid"] for key in rotated["keys"]]
    print(
        json.dumps(
            {
                "active_kid": rotated["active_kid"],
                "active_kids": rotated["active_kids"],
                "published": published,
            }
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Create a demo client and user once (credentials in a 0600 file), then serve."""
    from authserver.demo import admin_token_from, ensure_demo

    settings = _settings()
    asyncio.run(prepare(settings))
    path = asyncio.run(ensure_demo(settings, args.credentials_file))
    if not os.environ.get("AUTHSERVER_ADMIN_TOKEN"):
        # The demo's admin API is on, with the token from the credentials file (never printed).
        os.environ["AUTHSERVER_ADMIN_TOKEN"] = admin_token_from(args.credentials_file) or ""
    print(f"demo credentials (client secret, user password, admin token): {path}", file=sys.stderr)
    return cmd_serve(args)


def version() -> str:
    try:
        return metadata.version("authyard")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authserver", description="Authyard OAuth 2.1 authorization server")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_serve_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8080)
        command.add_argument("--workers", type=int, default=1)
        command.add_argument("--access-log", action="store_true", help="log every request")

    serve = commands.add_parser("serve", help="run the server (migrates the embedded SQLite database first)")
    add_serve_options(serve)
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help="serve with a demo client and user (created once)")
    add_serve_options(demo)
    demo.add_argument("--credentials-file", default="authserver-demo.json")
    demo.set_defaults(handler=cmd_demo)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)

    clients = commands.add_parser("clients", help="manage clients").add_subparsers(
        dest="action", required=True
    )
    create = clients.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--client-id", help="default: generated")
    create.add_argument(
        "--grant-type",
        action="append",
        required=True,
        choices=[
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
    )
    create.add_argument("--scope", action="append")
    create.add_argument("--audience", action="append")
    create.add_argument("--redirect-uri", action="append")
    create.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        help="where /logout may send users back",
    )
    create.add_argument("--public", action="store_true", help="a public client (no secret)")
    create.add_argument(
        "--token-endpoint-auth-method",
        choices=["client_secret_basic", "client_secret_post", "private_key_jwt", "workload_identity"],
        help="pin one secret method (default: either), or private_key_jwt (no secret; needs --jwks-file or "
        "--jwks-uri), or workload_identity (no secret; needs --workload-issuer and --workload-subject)",
    )
    create.add_argument(
        "--workload-issuer", help="workload_identity: the trusted issuer's name (e.g. kubernetes)"
    )
    create.add_argument(
        "--workload-subject",
        help="workload_identity: the exact sub of the workload's tokens (system:serviceaccount:<ns>:<name>)",
    )
    key_source = create.add_mutually_exclusive_group()
    key_source.add_argument(
        "--jwks-file", type=Path, help="private_key_jwt: a file holding the client's public JWK Set (JSON)"
    )
    key_source.add_argument(
        "--jwks-uri",
        help="private_key_jwt: where the client's public JWK Set is fetched (https, or loopback http)",
    )
    create.add_argument(
        "--token-endpoint-auth-signing-alg",
        choices=["RS256", "PS256", "ES256", "EdDSA"],
        help="private_key_jwt: the one algorithm the client's assertions must use (default: any its key "
        "allows)",
    )
    create.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_SECOND",
        help="this client's token requests per second for the whole server, in place of "
        "AUTHSERVER_TOKEN_RATE_PER_CLIENT",
    )
    create.add_argument(
        "--rate-limit-burst",
        type=int,
        metavar="REQUESTS",
        help="with --rate-limit: the burst (default: twice the rate, at least 1)",
    )
    create.add_argument(
        "--pkce-optional",
        action="store_true",
        help="a confidential client that checks the OpenID Connect nonce may leave PKCE out of OpenID "
        "requests (RFC 9700 §2.1.1)",
    )
    create.add_argument(
        "--id-token-signing-alg",
        choices=["ES256", "RS256", "EdDSA"],
        help="this client's ID-token algorithm (default: AUTHSERVER_ID_TOKEN_SIGNING_ALGORITHM)",
    )
    create.add_argument(
        "--skip-consent",
        action="store_true",
        help="a trusted first-party client: no consent page after sign-in (prompt=consent still shows it); "
        "a public client only with https redirect URIs on non-loopback hosts",
    )
    create.add_argument(
        "--backchannel-logout-uri",
        help="where logout tokens are POSTed when a sign-in session this client took part in ends "
        "(OpenID Connect Back-Channel Logout 1.0; https, or http on loopback)",
    )
    create.add_argument(
        "--backchannel-logout-session-required",
        action="store_true",
        help="the client needs sid in logout tokens (always sent; needs --backchannel-logout-uri)",
    )
    create.add_argument(
        "--exchange-audience",
        action="append",
        help="token exchange (RFC 8693): an audience or resource this client may ask an exchanged token for",
    )
    create.add_argument(
        "--exchange-subject-audience",
        action="append",
        help="token exchange: besides tokens issued to this client, it may exchange tokens with this aud",
    )
    create.add_argument(
        "--exchange-allow-impersonation",
        action="store_true",
        help="token exchange: allow exchanges without an actor_token (the token names no actor)",
    )
    create.set_defaults(handler=cmd_clients_create)

    users = commands.add_parser("users", help="manage users").add_subparsers(dest="action", required=True)
    user = users.add_parser("create", help="create a login user")
    user.add_argument("--username", required=True)
    user.add_argument("--password-stdin", action="store_true", required=True)
    user.add_argument("--email")
    user.add_argument("--name")
    # The other standard claims (OIDC Core §5.1), released by the profile, phone and address scopes.
    for claim in ("given-name", "family-name", "locale", "zoneinfo", "phone-number"):
        user.add_argument(f"--{claim}")
    user.add_argument("--phone-number-verified", action="store_true")
    user.add_argument(
        "--group", action="append", help="a group the user is in (the groups claim); repeat for several"
    )
    for member in ("formatted", "street-address", "locality", "region", "postal-code", "country"):
        user.add_argument(f"--address-{member}")
    user.set_defaults(handler=cmd_users_create)
    password = users.add_parser("set-password", help="replace a user's password")
    password.add_argument("--username", required=True)
    password.add_argument("--password-stdin", action="store_true", required=True)
    password.set_defaults(handler=cmd_users_set_password)
    consents = users.add_parser("consents", help="list a user's remembered consents, or revoke them")
    consents.add_argument("--username", required=True)
    consents.add_argument("--revoke", action="store_true", help="forget them: the consent page shows again")
    consents.add_argument("--client-id", help="with --revoke: only this client's")
    consents.set_defaults(handler=cmd_users_consents)
    user_sessions = users.add_parser("sessions", help="list a user's sign-in sessions, or end them")
    user_sessions.add_argument("username")
    user_sessions.add_argument(
        "--revoke", action="store_true", help="end them all: sign in again, refresh tokens revoked"
    )
    user_sessions.set_defaults(handler=cmd_users_sessions)

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    rotate_keys = keys.add_parser("rotate", help="promote the next key, retire the active one")
    rotate_keys.add_argument("--retention", type=float, help="seconds retired keys stay published")
    rotate_keys.set_defaults(handler=cmd_keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # pydantic validation of CLI input, bad key files
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PermissionError as error:  # a fresh volume owned by root, a read-only key directory
        path = os.path.abspath(str(error.filename or "."))
        print(
            f"error: permission denied writing {path} (this process runs as uid {os.getuid()};"
            f" make {os.path.dirname(path)} writable for it: chown a volume to that uid, or set the pod's"
            " fsGroup)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
