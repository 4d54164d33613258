"""Users as the admin API manages them: what a request may say, the password policy applied to it
(``protocol.password_policy``), and how a user is shown back (never the password hash)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from authserver.crypto.passwords import hash_password_async
from authserver.protocol.errors import InvalidRequest
from authserver.protocol.models import User
from authserver.protocol.password_policy import PasswordPolicy, WeakPassword
from authserver.protocol.store import UserDirectory

# Printable, no spaces or slashes (a path segment of this API), as the CLI's users have always been.
Username = Annotated[str, StringConstraints(pattern=r"^[^\s/\x00-\x1f\x7f]{1,255}$")]
# The policy's maximum is checked with a clear message; this bound only keeps the body small.
Password = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Group = Annotated[str, StringConstraints(pattern=r"^\S(.*\S)?$", max_length=255)]
Groups = Annotated[list[Group], Field(max_length=256, description="The groups claim (scope groups).")]


class UserView(BaseModel):
    user_id: str
    username: str
    email: str | None
    email_verified: bool
    name: str | None
    disabled: bool
    password_set: bool = Field(description="False: the user cannot sign in until a password is set.")
    groups: list[str] = Field(default_factory=list, description="The groups claim (scope groups).")

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            user_id=user.user_id,
            username=user.username,
            email=user.email,
            email_verified=user.email_verified,
            name=user.name,
            disabled=user.disabled,
            password_set=user.password_set,
            groups=list(user.groups),
        )


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password | None = Field(None, description="Absent: no sign-in until one is set.")
    email: Email | None = None
    email_verified: bool = False
    name: Name | None = None
    groups: Groups = []


class UserChange(BaseModel):
    """The fields to change; absent ones stay as they are (null clears email or name)."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    email_verified: bool | None = None
    name: Name | None = None
    groups: Groups | None = Field(None, description="Replaces the user's groups; null: unchanged.")


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password
    revoke_refresh_tokens: bool = Field(
        False, description="Also revoke every refresh-token family of the user (and their access tokens)."
    )


async def _hash_checked(policy: PasswordPolicy, password: str, username: str, email: str | None) -> str:
    try:
        policy.check(password, username, email)
    except WeakPassword as problem:
        raise InvalidRequest(str(problem)) from None
    return await hash_password_async(password)


async def create_user(directory: UserDirectory, policy: PasswordPolicy, new: NewUser) -> User | None:
    """The user created; None when the username is taken."""
    password_hash = ""  # no password: sign-in fails (as a wrong password would) until one is set
    if new.password is not None:
        password_hash = await _hash_checked(policy, new.password, new.username, new.email)
    user = User(
        user_id=str(uuid.uuid4()),
        username=new.username,
        password_hash=password_hash,
        email=new.email,
        email_verified=new.email_verified and new.email is not None,
        name=new.name,
        groups=tuple(dict.fromkeys(new.groups)),
    )
    return user if await directory.add_user(user) else None


async def update_user(directory: UserDirectory, username: str, change: UserChange) -> User | None:
    fields = change.model_dump(exclude_unset=True)
    if fields.get("email_verified", False) is None:
        del fields["email_verified"]  # null: unchanged (it is a flag, not a value to clear)
    if "groups" in fields:
        if fields["groups"] is None:
            del fields["groups"]
        else:
            fields["groups"] = tuple(dict.fromkeys(fields["groups"]))

    def changed(user: User) -> User:
        updated = replace(user, **fields)
        # A new address is not verified unless the same request says so.
        if "email" in fields and fields["email"] != user.email and "email_verified" not in fields:
            updated = replace(updated, email_verified=False)
        return replace(updated, email_verified=updated.email_verified and updated.email is not None)

    return await directory.change_user(username, changed)


async def set_disabled(
    directory: UserDirectory, username: str, disabled: bool, access_token_ttl: timedelta
) -> User | None:
    """Disabling also revokes the user's refresh-token families (and their live access tokens), in the same
    transaction: refresh-token rotation then refuses them with invalid_grant without reading the user."""
    return await directory.change_user(
        username, lambda user: replace(user, disabled=disabled), access_token_ttl if disabled else None
    )


async def reset_password(
    directory: UserDirectory,
    policy: PasswordPolicy,
    user: User,
    reset: PasswordReset,
    access_token_ttl: timedelta,
) -> User | None:
    """Set a new password (checked against ``user``'s username and e-mail); optionally revoke the user's
    refresh-token families, in the same transaction."""
    password_hash = await _hash_checked(policy, reset.password, user.username, user.email)
    return await directory.change_user(
        user.username,
        lambda user: replace(user, password_hash=password_hash),
        access_token_ttl if reset.revoke_refresh_tokens else None,
    )
