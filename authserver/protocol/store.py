"""The storage ports: what the protocol needs from a database, and nothing of how it is done."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from authserver.protocol.models import (
    AuthorizationCode,
    Client,
    ClientUsage,
    CodeBinding,
    Consent,
    LoginFailures,
    NewRefreshToken,
    RedeemedCode,
    Redemption,
    RefreshToken,
    RegisteredClient,
    RevokedSince,
    SignInSession,
    UsageCount,
    User,
)
from authserver.protocol.session_end import EndedSession, EndReason


class StoreUnavailable(Exception):
    """The database could not be reached or failed the operation: nothing is known to have changed
    that the caller was not told of, and a retry may succeed. Storage raises this for every database
    failure (the driver's and its own), so nothing above storage sees a driver's exceptions."""


class WorkloadTaken(Exception):
    """A registration names a workload (trusted issuer, subject) another client is registered for: one
    workload is one client, or a token could not say which client it authenticates."""


class Store(Protocol):
    async def get_client(self, client_id: str) -> Client | None: ...

    async def get_client_by_workload(self, issuer: str, subject: str) -> Client | None:
        """The workload_identity client registered for (trusted issuer name, subject), if any (one at
        most: the pair is unique)."""
        ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_username(self, username: str) -> User | None: ...

    async def save_authorization_code(self, code_hash: str, code: AuthorizationCode) -> None: ...

    async def redeem_authorization_code(
        self, code_hash: str, now: datetime, binding: CodeBinding, refresh: NewRefreshToken | None
    ) -> Redemption[RedeemedCode]:
        """In one transaction: mark the code used (any attempt uses it up) and, when the code was unused,
        unexpired and matches ``binding`` exactly, store ``refresh`` as its new family, linked to the code.

        OK: the code, its user and the refresh token stored (the caller still checks the binding: the
        store only refuses to issue on a mismatch). EXPIRED: used up, expired. REPLAYED: it was used
        before; ``extra["family_id"]`` is the family it issued (empty if none), ``extra["client_id"]`` the
        code's client. UNKNOWN: no such code.
        """
        ...

    async def rotate_refresh_token(
        self, family_id: str, secret_hash: str, client_id: str, successor: NewRefreshToken, now: datetime
    ) -> Redemption[RefreshToken]:
        """In one transaction: if family ``family_id`` belongs to ``client_id``, is unrevoked and unexpired
        and ``secret_hash`` is its current secret's, make ``successor`` its current token (same scope,
        audience, user, auth_time): OK with the successor. Otherwise nothing changes: REFUSED with the
        family as it stands now for that secret (None when unknown), from which the caller tells reuse
        (``rotated``: not the current secret) from expiry or revocation."""
        ...

    async def get_refresh_token(self, family_id: str, secret_hash: str) -> RefreshToken | None:
        """The family, as seen by the holder of ``secret_hash`` (``rotated`` unless it is the current one)."""
        ...

    async def legacy_refresh_family(self, token_hash: str) -> str | None:
        """The family a token issued before families (by its hash) was migrated into."""
        ...

    async def revoke_grant(
        self, family_id: str | None, grant_id: str, access_tokens_expire: datetime
    ) -> None:
        """In one transaction: revoke refresh family ``family_id`` (None: no family; unknown: nothing to do)
        and record grant ``grant_id`` as revoked until ``access_tokens_expire`` (a later revocation of the
        same grant may only extend that)."""
        ...

    async def revoke_access_token(self, jti: str, expires_at: datetime) -> None: ...

    # private_key_jwt (RFC 7523 §3 item 7): each client assertion's jti is accepted once, everywhere.
    async def spend_client_assertion(self, key: str, expires_at: datetime, now: datetime) -> bool:
        """Record ``key`` (a hash of client and jti) until ``expires_at``, in one atomic write: True the
        first time, False if it is already recorded and not expired at ``now`` (a replay)."""
        ...

    # Remembered consent (OIDC Core §3.1.2.4): one grant per user, client and scope.
    async def granted_scopes(self, user_id: str, client_id: str) -> frozenset[str]:
        """The scopes ``user_id`` has allowed ``client_id`` (empty when none)."""
        ...

    async def grant_consent(self, user_id: str, client_id: str, scopes: Iterable[str], now: datetime) -> None:
        """Remember ``scopes`` as allowed, beside those granted before (granting one twice is no error)."""
        ...

    async def list_consents(self, user_id: str) -> list[Consent]:
        """What ``user_id`` has allowed, one entry per client, in client_id order."""
        ...

    async def revoke_consents(self, user_id: str, client_id: str | None) -> bool:
        """Forget what ``user_id`` allowed ``client_id`` (every client when None); False if there was none."""
        ...

    async def revoked_since(self, since: datetime) -> RevokedSince:
        """Access tokens and grants revoked after ``since`` and not yet expired (incremental sync)."""
        ...

    # The census of live workers (every worker of every replica), for the server-wide rate limits.
    async def worker_heartbeat(self, worker_id: str, now: datetime, live_since: datetime) -> int:
        """Record ``worker_id`` as seen at ``now``, forget the workers last seen before ``live_since`` (they
        are gone), and return how many were seen since then, this one included."""
        ...

    async def forget_worker(self, worker_id: str) -> None:
        """Drop ``worker_id`` from the census (a worker shutting down: the others take its share at once)."""
        ...

    # The login throttle's failure counters, shared by every worker and replica.
    async def login_failures(self, keys: Iterable[str]) -> dict[str, LoginFailures]:
        """The counters of ``keys`` that have one (expired ones included: the caller compares)."""
        ...

    async def record_login_failure(self, keys: Iterable[str], now: datetime, window: timedelta) -> None:
        """Count one failure against each key, atomically: its count goes up by one, or starts over at one
        when its ``expires_at`` has passed; ``last_failure_at`` becomes ``now``, ``expires_at`` now+window."""
        ...

    async def forget_login_failures(self, keys: Iterable[str]) -> None:
        """Drop the counters of ``keys`` (a correct password ends an account's run of failures)."""
        ...

    # Sign-in sessions (``protocol.sessions``): one row per browser sign-in.
    async def create_session(self, session: SignInSession) -> None: ...

    async def get_session(self, session_id: str) -> SignInSession | None:
        """The session (ended or not, with its clients) by primary key; None when unknown or purged."""
        ...

    async def touch_session(self, session_id: str, now: datetime) -> None:
        """Set ``last_seen_at`` to ``now`` (an ended session is left as it is)."""
        ...

    async def add_session_client(self, session_id: str, client_id: str, now: datetime) -> None:
        """Record that the session signed into ``client_id`` (once: a client recorded before is kept)."""
        ...

    async def list_sessions(self, user_id: str) -> list[SignInSession]:
        """The user's unended sessions (expired ones the sweep has not ended yet included), oldest first."""
        ...

    async def end_session(
        self, session_id: str, reason: EndReason, now: datetime, default_access_token_ttl: timedelta
    ) -> EndedSession | None:
        """In one transaction: end the session unless it has ended already (None then, or when unknown), and
        revoke the refresh families it issued and the access tokens of each family whose latest one may still
        be live (its client's access-token TTL, or ``default_access_token_ttl``); families granted
        ``offline_access`` (``scopes.OFFLINE_ACCESS``, OIDC Core §11) are left: they outlive the session."""
        ...

    async def end_user_sessions(
        self, user_id: str, reason: EndReason, now: datetime, default_access_token_ttl: timedelta
    ) -> list[EndedSession]:
        """``end_session`` for every unended session of the user, oldest first."""
        ...

    async def end_expired_sessions(
        self, now: datetime, idle_timeout: timedelta | None, default_access_token_ttl: timedelta
    ) -> list[EndedSession]:
        """``end_session`` (EXPIRED) for every unended session whose lifetime has passed by ``now`` or, with
        ``idle_timeout``, that was last seen that long ago."""
        ...

    # Usage per client (``protocol.usage``): counted by each worker in memory, added here every few seconds.
    async def record_client_usage(self, counts: Sequence[UsageCount]) -> None:
        """Add ``counts`` in one transaction: tokens and errors to their client's hourly bucket (made at 0),
        and each client's last token time and last error, where later than the stored ones."""
        ...

    async def get_client_usage(self, client_id: str, buckets_since: datetime) -> ClientUsage | None:
        """The client's last use and its hourly buckets from ``buckets_since`` on (None: nothing recorded)."""
        ...

    async def list_client_usage(
        self, after: str | None, limit: int, buckets_since: datetime, active_since: datetime | None = None
    ) -> list[ClientUsage]:
        """Up to ``limit`` clients with recorded usage, in client_id order after ``after``; with
        ``active_since``, only those with a token or an error since then."""
        ...

    async def purge_client_usage(self, hours_before: datetime) -> None:
        """Drop the hourly buckets before ``hours_before``, and the last use of unregistered clients."""
        ...


class ClientRegistry(Protocol):
    """Client registrations, as the admin API manages them (the token path reads ``Store.get_client``)."""

    async def get_registered_client(self, client_id: str) -> RegisteredClient | None: ...

    async def list_registered_clients(self, after: str | None, limit: int) -> list[RegisteredClient]:
        """Up to ``limit`` clients in client_id order, after ``after`` (a page of them)."""
        ...

    async def change_registered_client(
        self, client_id: str, change: Callable[[RegisteredClient | None], RegisteredClient | None]
    ) -> RegisteredClient | None:
        """In one transaction, with the client locked: store what ``change`` makes of the client as it
        stands (None: not registered); ``change`` returning it unchanged, or None, writes nothing. The client
        as stored afterwards. ``change`` may run more than once (a retry after a concurrent create).
        Raises WorkloadTaken when the result would name another client's workload."""
        ...

    async def delete_registered_client(self, client_id: str, default_access_token_ttl: timedelta) -> bool:
        """Remove the client and its remembered consents, and revoke its grants: every refresh family, and
        the access tokens of each family whose latest one may still be live (the client's access-token TTL,
        or ``default_access_token_ttl`` when it has none). False if there was no such client."""
        ...


class UserDirectory(Protocol):
    """Users, as the admin API and the CLI manage them (sign-in reads ``Store.get_user_by_username``)."""

    async def add_user(self, user: User) -> bool:
        """Store a new user; False (nothing written) when the username or user_id is taken."""
        ...

    async def list_users(self, after: str | None, limit: int) -> list[User]:
        """Up to ``limit`` users in username order, after ``after`` (a page of them)."""
        ...

    async def change_user(
        self, username: str, change: Callable[[User], User], revoke_grants: timedelta | None = None
    ) -> User | None:
        """In one transaction, with the user locked: store what ``change`` makes of the user (None: no such
        user). With ``revoke_grants`` (the default access-token TTL), also revoke every refresh family of the
        user and the access tokens of each family whose latest one may still be live."""
        ...

    async def delete_user(self, username: str, default_access_token_ttl: timedelta) -> bool:
        """Remove the user and their remembered consents, and revoke their grants (as ``change_user``
        does). False if there was no such user."""
        ...

    async def federated_user(self, provider: str, subject: str) -> User | None:
        """The user linked to ``subject`` at the upstream identity provider ``provider``; None: no link."""
        ...

    async def add_federated_user(self, provider: str, subject: str, user: User) -> bool:
        """Store a new user and their link to (``provider``, ``subject``) in one transaction; False (nothing
        written) when the username, the user_id or that link is taken."""
        ...

    async def federated_sign_in(
        self, provider: str, subject: str, change: Callable[[User], User]
    ) -> User | None:
        """In one transaction, with the linked user locked: store what ``change`` makes of them (attributes
        refreshed from the upstream) and note the sign-in; None when no user is linked to ``subject``."""
        ...
