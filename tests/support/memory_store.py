"""The protocol's storage ports (``protocol.store.Store`` and ``ClientRegistry``) in memory, for unit tests
of the protocol without a database.

Faithful to the SQL stores where the protocol can tell: a code is used up by any attempt to redeem it and
issues its refresh family only when it matches its binding and has not expired; a family keeps only its
current secret's hash, so a rotation is accepted once; revocation is by family, and of a grant's access
tokens by grant id; every change is atomic
(no await between reading and writing). ``tests/authserver/test_store_contract.py`` runs the same checks
against this store and the real ones on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from authserver.crypto.refresh_token_values import grant_id_of_family
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
    RedemptionOutcome,
    RefreshToken,
    RegisteredClient,
    RevokedSince,
    SignInSession,
    UsageCount,
    User,
)
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS
from authserver.protocol.scopes import OFFLINE_ACCESS
from authserver.protocol.session_end import EndedSession, EndReason
from authserver.protocol.store import WorkloadTaken


@dataclass
class _Revocation:
    expires_at: datetime
    revoked_at: datetime


@dataclass
class _StoredCode:
    code: AuthorizationCode
    consumed: bool = False
    family_id: str | None = None  # the refresh family its redemption issued


@dataclass
class _Family:
    secret_hash: str
    grant: RefreshToken  # client, user, scope, audience, auth_time, expiry; rotated is always False here
    last_access_token_at: datetime  # issued or last rotated
    revoked: bool = False


class MemoryStore:
    def __init__(self) -> None:
        self.clients: dict[str, RegisteredClient] = {}
        self.users: dict[str, User] = {}
        self.codes: dict[str, _StoredCode] = {}
        self.families: dict[str, _Family] = {}
        self.legacy_tokens: dict[str, str] = {}  # token hash -> family, for tokens issued before families
        self.revoked_access_tokens: dict[str, _Revocation] = {}  # by jti
        self.revoked_grants: dict[str, _Revocation] = {}  # by grant id
        self.consents: dict[tuple[str, str, str], datetime] = {}  # (user, client, scope) -> granted at
        self.failures: dict[str, LoginFailures] = {}  # the login throttle's counters, by key
        self.sessions: dict[str, SignInSession] = {}  # client_ids kept in first-signed-into order
        self.used_client_assertions: dict[str, datetime] = {}  # spent assertions: key -> expires at
        self.federated: dict[tuple[str, str], str] = {}  # (provider, upstream subject) -> user_id
        self.usage_hours: dict[tuple[str, datetime], tuple[int, int]] = {}  # (client, hour) -> tokens, errors
        self.last_use: dict[str, ClientUsage] = {}  # by client; its hours empty
        self.heartbeats: dict[str, datetime] = {}  # the worker census: worker id -> last seen
        self.client_changes: dict[
            str, datetime
        ] = {}  # client id -> when it was last created, changed or deleted

    # Test set-up
    def add_client(self, client: Client, now: datetime | None = None) -> Client:
        at = now or datetime.now(UTC)
        self.clients[client.client_id] = RegisteredClient(client, created_at=at, updated_at=at)
        return client

    async def create_user(self, user: User) -> None:
        if user.user_id in self.users or await self.get_user_by_username(user.username):
            raise KeyError("user_id and username are unique")
        # As the SQL stores read it: a user never changed was last updated when created.
        self.users[user.user_id] = user if user.updated_at else replace(user, updated_at=datetime.now(UTC))

    # Store: clients and users
    async def get_client(self, client_id: str) -> Client | None:
        registered = self.clients.get(client_id)
        return registered.client if registered else None

    async def get_client_by_workload(self, issuer: str, subject: str) -> Client | None:
        return next(
            (
                registered.client
                for registered in self.clients.values()
                if (registered.client.workload_issuer, registered.client.workload_subject)
                == (issuer, subject)
            ),
            None,
        )

    async def get_user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    async def get_user_by_username(self, username: str) -> User | None:
        return next((user for user in self.users.values() if user.username == username), None)

    # Store: authorization codes
    async def save_authorization_code(self, code_hash: str, code: AuthorizationCode) -> None:
        if code_hash in self.codes:
            raise KeyError("duplicate authorization code")  # the primary key refuses it in SQL
        self.codes[code_hash] = _StoredCode(code)

    async def redeem_authorization_code(
        self, code_hash: str, now: datetime, binding: CodeBinding, refresh: NewRefreshToken | None
    ) -> Redemption[RedeemedCode]:
        stored = self.codes.get(code_hash)
        if stored is None:
            return Redemption(RedemptionOutcome.UNKNOWN)
        if stored.consumed:
            return Redemption(
                RedemptionOutcome.REPLAYED,
                extra={"family_id": stored.family_id or "", "client_id": stored.code.client_id},
            )
        code = stored.code
        stored.consumed = True  # any attempt uses the code up
        if code.expires_at <= now:
            return Redemption(RedemptionOutcome.EXPIRED)
        matches = (
            code.client_id == binding.client_id
            and code.redirect_uri == binding.redirect_uri
            and code.code_challenge == binding.code_challenge
        )
        issued = None
        if matches and refresh is not None:
            stored.family_id = refresh.family_id
            issued = RefreshToken(
                family_id=refresh.family_id,
                client_id=code.client_id,
                user_id=code.user_id,
                scope=code.scope,
                audience=code.audience,
                auth_time=code.auth_time,
                expires_at=refresh.expires_at,
                claims=code.claims,
                session_id=code.session_id,
            )
            self.families[refresh.family_id] = _Family(refresh.secret_hash, issued, now)
        return Redemption(RedemptionOutcome.OK, RedeemedCode(code, self.users.get(code.user_id), issued))

    # Store: refresh tokens
    async def get_refresh_token(self, family_id: str, secret_hash: str) -> RefreshToken | None:
        family = self.families.get(family_id)
        return None if family is None else _as_seen(family, secret_hash)

    async def legacy_refresh_family(self, token_hash: str) -> str | None:
        return self.legacy_tokens.get(token_hash)

    async def rotate_refresh_token(
        self, family_id: str, secret_hash: str, client_id: str, successor: NewRefreshToken, now: datetime
    ) -> Redemption[RefreshToken]:
        family = self.families.get(family_id)
        if (
            family is None
            or family.secret_hash != secret_hash
            or family.grant.client_id != client_id
            or family.revoked
            or family.grant.expires_at <= now
        ):
            return Redemption(
                RedemptionOutcome.REFUSED, None if family is None else _as_seen(family, secret_hash)
            )
        family.secret_hash = successor.secret_hash
        family.grant = replace(family.grant, expires_at=successor.expires_at)
        family.last_access_token_at = now
        return Redemption(RedemptionOutcome.OK, family.grant)

    # Store: grant and access-token revocations
    async def revoke_grant(
        self, family_id: str | None, grant_id: str, access_tokens_expire: datetime
    ) -> None:
        family = self.families.get(family_id) if family_id is not None else None
        if family is not None:
            family.revoked = True
        self._revoke_grant(grant_id, access_tokens_expire)

    def _revoke_grant(self, grant_id: str, expires_at: datetime) -> None:
        known = self.revoked_grants.get(grant_id)
        if known is None or known.expires_at < expires_at:  # only ever extended
            self.revoked_grants[grant_id] = _Revocation(expires_at, datetime.now(UTC))

    async def revoke_access_token(self, jti: str, expires_at: datetime) -> None:
        self.revoked_access_tokens.setdefault(jti, _Revocation(expires_at, datetime.now(UTC)))

    async def spend_client_assertion(self, key: str, expires_at: datetime, now: datetime) -> bool:
        current = self.used_client_assertions.get(key)
        if current is not None and current > now:
            return False
        self.used_client_assertions[key] = expires_at
        return True

    async def revoked_since(self, since: datetime) -> RevokedSince:
        now = datetime.now(UTC)

        def fresh(entries: dict[str, _Revocation]) -> dict[str, _Revocation]:
            return {
                key: entry
                for key, entry in entries.items()
                if entry.revoked_at > since and entry.expires_at > now
            }

        tokens, grants = fresh(self.revoked_access_tokens), fresh(self.revoked_grants)
        changed = {client_id: at for client_id, at in self.client_changes.items() if at > since}
        return RevokedSince(
            access_tokens=[(jti, entry.expires_at) for jti, entry in tokens.items()],
            grants=[(grant_id, entry.expires_at) for grant_id, entry in grants.items()],
            newest=max(
                [entry.revoked_at for entry in [*tokens.values(), *grants.values()]] + list(changed.values()),
                default=since,
            ),
            changed_clients=list(changed),
        )

    # Store: remembered consent
    async def worker_heartbeat(self, worker_id: str, now: datetime, live_since: datetime) -> int:
        self.heartbeats[worker_id] = now
        self.heartbeats = {worker: seen for worker, seen in self.heartbeats.items() if seen >= live_since}
        return sum(seen >= live_since for seen in self.heartbeats.values())

    async def forget_worker(self, worker_id: str) -> None:
        self.heartbeats.pop(worker_id, None)

    async def granted_scopes(self, user_id: str, client_id: str) -> frozenset[str]:
        return frozenset(
            scope for (user, client, scope) in self.consents if (user, client) == (user_id, client_id)
        )

    async def grant_consent(self, user_id: str, client_id: str, scopes: Iterable[str], now: datetime) -> None:
        for scope in scopes:
            self.consents.setdefault((user_id, client_id, scope), now)

    async def list_consents(self, user_id: str) -> list[Consent]:
        by_client: dict[str, list[tuple[str, datetime]]] = {}
        for (user, client, scope), granted_at in sorted(self.consents.items()):
            if user == user_id:
                by_client.setdefault(client, []).append((scope, granted_at))
        return [
            Consent(client, tuple(scope for scope, _ in grants), max(at for _, at in grants))
            for client, grants in by_client.items()
        ]

    async def revoke_consents(self, user_id: str, client_id: str | None) -> bool:
        gone = [key for key in self.consents if key[0] == user_id and client_id in (None, key[1])]
        for key in gone:
            del self.consents[key]
        return bool(gone)

    # ClientRegistry
    async def get_registered_client(self, client_id: str) -> RegisteredClient | None:
        return self.clients.get(client_id)

    async def list_registered_clients(self, after: str | None, limit: int) -> list[RegisteredClient]:
        ids = sorted(client_id for client_id in self.clients if not after or client_id > after)
        return [self.clients[client_id] for client_id in ids[:limit]]

    async def change_registered_client(
        self, client_id: str, change: Callable[[RegisteredClient | None], RegisteredClient | None]
    ) -> RegisteredClient | None:
        current = self.clients.get(client_id)
        wanted = change(current)
        if wanted is None or wanted == current:
            return current
        workload = (wanted.client.workload_issuer, wanted.client.workload_subject)
        if workload != (None, None) and any(
            (other.client.workload_issuer, other.client.workload_subject) == workload
            for other_id, other in self.clients.items()
            if other_id != client_id
        ):
            raise WorkloadTaken()
        self.clients[client_id] = wanted
        self.client_changes[client_id] = datetime.now(UTC)
        return wanted

    async def delete_registered_client(self, client_id: str, default_access_token_ttl: timedelta) -> bool:
        now = datetime.now(UTC)
        registered = self.clients.pop(client_id, None)
        if registered is not None:
            self.client_changes[client_id] = now
        ttl = registered.client.access_token_ttl_seconds if registered else None
        lifetime = (timedelta(seconds=ttl) if ttl else default_access_token_ttl) + timedelta(
            seconds=CLOCK_LEEWAY_SECONDS
        )
        for family_id, family in self.families.items():
            if family.grant.client_id == client_id:
                family.revoked = True
                if family.last_access_token_at + lifetime > now:
                    self._revoke_grant(grant_id_of_family(family_id), now + lifetime)
        for key in [key for key in self.consents if key[1] == client_id]:
            del self.consents[key]
        return registered is not None

    # UserDirectory
    async def add_user(self, user: User) -> bool:
        if user.user_id in self.users or await self.get_user_by_username(user.username):
            return False
        self.users[user.user_id] = user if user.updated_at else replace(user, updated_at=datetime.now(UTC))
        return True

    async def list_users(self, after: str | None, limit: int) -> list[User]:
        found = sorted((u for u in self.users.values() if not after or u.username > after), key=_username)
        return found[:limit]

    async def change_user(
        self, username: str, change: Callable[[User], User], revoke_grants: timedelta | None = None
    ) -> User | None:
        current = await self.get_user_by_username(username)
        if current is None:
            return None
        wanted = change(current)
        if wanted != current:
            wanted = replace(wanted, updated_at=datetime.now(UTC))  # as the databases do: OIDC Core §5.1
        self.users[current.user_id] = wanted
        if revoke_grants is not None:
            self._revoke_user_grants(current.user_id, revoke_grants)
        return wanted

    async def delete_user(self, username: str, default_access_token_ttl: timedelta) -> bool:
        user = await self.get_user_by_username(username)
        if user is None:
            return False
        del self.users[user.user_id]
        self.federated = {link: owner for link, owner in self.federated.items() if owner != user.user_id}
        await self.revoke_consents(user.user_id, None)
        self._revoke_user_grants(user.user_id, default_access_token_ttl)
        return True

    async def federated_user(self, provider: str, subject: str) -> User | None:
        user_id = self.federated.get((provider, subject))
        return None if user_id is None else self.users.get(user_id)

    async def add_federated_user(self, provider: str, subject: str, user: User) -> bool:
        if (provider, subject) in self.federated or not await self.add_user(user):
            return False
        self.federated[(provider, subject)] = user.user_id
        return True

    async def federated_sign_in(
        self, provider: str, subject: str, change: Callable[[User], User]
    ) -> User | None:
        current = await self.federated_user(provider, subject)
        if current is None:
            return None
        return await self.change_user(current.username, change)

    def _revoke_user_grants(self, user_id: str, default_access_token_ttl: timedelta) -> None:
        self._revoke_families(lambda grant: grant.user_id == user_id, default_access_token_ttl)

    def _revoke_families(
        self, which: Callable[[RefreshToken], bool], default_access_token_ttl: timedelta
    ) -> None:
        now = datetime.now(UTC)
        for family_id, family in self.families.items():
            if not which(family.grant) or family.revoked:
                continue
            family.revoked = True
            registered = self.clients.get(family.grant.client_id)
            ttl = registered.client.access_token_ttl_seconds if registered else None
            lifetime = (timedelta(seconds=ttl) if ttl else default_access_token_ttl) + timedelta(
                seconds=CLOCK_LEEWAY_SECONDS
            )
            if family.last_access_token_at + lifetime > now:
                self._revoke_grant(grant_id_of_family(family_id), now + lifetime)

    # Store: sign-in sessions
    async def create_session(self, session: SignInSession) -> None:
        if session.session_id in self.sessions:
            raise KeyError("duplicate session")  # the primary key refuses it in SQL
        self.sessions[session.session_id] = replace(session, client_ids=())

    async def get_session(self, session_id: str) -> SignInSession | None:
        return self.sessions.get(session_id)

    async def touch_session(self, session_id: str, now: datetime) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.ended_at is None:
            self.sessions[session_id] = replace(session, last_seen_at=now)

    async def add_session_client(self, session_id: str, client_id: str, now: datetime) -> None:
        session = self.sessions.get(session_id)
        if session is not None and client_id not in session.client_ids:
            self.sessions[session_id] = replace(session, client_ids=(*session.client_ids, client_id))

    async def list_sessions(self, user_id: str) -> list[SignInSession]:
        found = [s for s in self.sessions.values() if s.user_id == user_id and s.ended_at is None]
        return sorted(found, key=lambda s: (s.created_at, s.session_id))

    async def end_session(
        self, session_id: str, reason: EndReason, now: datetime, default_access_token_ttl: timedelta
    ) -> EndedSession | None:
        ended = self._end(lambda s: s.session_id == session_id, reason, now, default_access_token_ttl)
        return ended[0] if ended else None

    async def end_user_sessions(
        self, user_id: str, reason: EndReason, now: datetime, default_access_token_ttl: timedelta
    ) -> list[EndedSession]:
        return self._end(lambda s: s.user_id == user_id, reason, now, default_access_token_ttl)

    async def end_expired_sessions(
        self, now: datetime, idle_timeout: timedelta | None, default_access_token_ttl: timedelta
    ) -> list[EndedSession]:
        def expired(session: SignInSession) -> bool:
            idle = idle_timeout is not None and session.last_seen_at <= now - idle_timeout
            return session.expires_at <= now or idle

        return self._end(expired, EndReason.EXPIRED, now, default_access_token_ttl)

    def _end(
        self,
        which: Callable[[SignInSession], bool],
        reason: EndReason,
        now: datetime,
        default_access_token_ttl: timedelta,
    ) -> list[EndedSession]:
        chosen = sorted(
            (s for s in self.sessions.values() if s.ended_at is None and which(s)),
            key=lambda s: (s.created_at, s.session_id),
        )
        for session in chosen:
            self.sessions[session.session_id] = replace(session, ended_at=now, end_reason=reason.value)
        ids = {session.session_id for session in chosen}
        self._revoke_families(
            lambda grant: grant.session_id in ids and OFFLINE_ACCESS not in grant.scope.split(),
            default_access_token_ttl,
        )
        return [EndedSession(s.session_id, s.user_id, s.client_ids, reason) for s in chosen]

    # Store: the login throttle's counters
    async def login_failures(self, keys: Iterable[str]) -> dict[str, LoginFailures]:
        return {key: self.failures[key] for key in keys if key in self.failures}

    async def record_login_failure(self, keys: Iterable[str], now: datetime, window: timedelta) -> None:
        for key in dict.fromkeys(keys):
            known = self.failures.get(key)
            count = 1 if known is None or known.expires_at <= now else known.failures + 1
            self.failures[key] = LoginFailures(count, now, now + window)

    async def forget_login_failures(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)

    # Usage per client
    async def record_client_usage(self, counts: Sequence[UsageCount]) -> None:
        for count in counts:
            tokens, errors = self.usage_hours.get((count.client_id, count.hour), (0, 0))
            self.usage_hours[(count.client_id, count.hour)] = (tokens + count.tokens, errors + count.errors)
            last = self.last_use.get(count.client_id) or ClientUsage(count.client_id, None, None, None)
            if count.last_token_at is not None and (
                last.last_token_at is None or count.last_token_at > last.last_token_at
            ):
                last = replace(last, last_token_at=count.last_token_at)
            if count.last_error_at is not None and (
                last.last_error_at is None or count.last_error_at > last.last_error_at
            ):
                last = replace(last, last_error=count.last_error, last_error_at=count.last_error_at)
            self.last_use[count.client_id] = last

    async def get_client_usage(self, client_id: str, buckets_since: datetime) -> ClientUsage | None:
        last = self.last_use.get(client_id)
        return None if last is None else self._with_hours(last, buckets_since)

    async def list_client_usage(
        self, after: str | None, limit: int, buckets_since: datetime, active_since: datetime | None = None
    ) -> list[ClientUsage]:
        def active(last: ClientUsage) -> bool:
            times = (last.last_token_at, last.last_error_at)
            return active_since is None or any(at is not None and at >= active_since for at in times)

        chosen = sorted(
            (last for client_id, last in self.last_use.items() if (after is None or client_id > after)),
            key=lambda last: last.client_id,
        )
        return [self._with_hours(last, buckets_since) for last in chosen if active(last)][:limit]

    def _with_hours(self, last: ClientUsage, since: datetime) -> ClientUsage:
        hours = sorted(
            (hour, tokens, errors)
            for (client_id, hour), (tokens, errors) in self.usage_hours.items()
            if client_id == last.client_id and hour >= since
        )
        return replace(last, hours=tuple(hours))

    async def purge_client_usage(self, hours_before: datetime) -> None:
        self.usage_hours = {key: value for key, value in self.usage_hours.items() if key[1] >= hours_before}
        self.last_use = {key: value for key, value in self.last_use.items() if key in self.clients}


def _username(user: User) -> str:
    return user.username


def _as_seen(family: _Family, secret_hash: str) -> RefreshToken:
    """The family as the holder of ``secret_hash`` sees it: ``rotated`` unless that is its current secret."""
    return replace(
        family.grant,
        rotated=not hmac.compare_digest(family.secret_hash, secret_hash),
        revoked=family.revoked,
    )
