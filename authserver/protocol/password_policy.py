"""What a new password must be: long enough, not too long, and not the account's own name.

NIST SP 800-63B §5.1.1.2: a minimum length (8 at least), a maximum of at least 64 (the server bounds it so
that argon2 never hashes an arbitrarily long input), and a check against values specific to the account
(its username and e-mail address). Applied where a password is set: the admin API and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

# The login form reads at most this many characters of a password: a longer maximum could never sign in.
LOGIN_FORM_PASSWORD_CHARS = 1024


class WeakPassword(ValueError):
    """The password breaks the policy; the message says how (never what the password is)."""


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    max_length: int = 256
    reject_account_names: bool = True  # refuse a password containing the username or e-mail's local part

    def check(self, password: str, username: str, email: str | None = None) -> None:
        """Raise ``WeakPassword`` unless ``password`` may be set for this account."""
        if len(password) < self.min_length:
            raise WeakPassword(f"the password must be at least {self.min_length} characters")
        if len(password) > self.max_length:
            raise WeakPassword(f"the password must be at most {self.max_length} characters")
        if self.reject_account_names and _contains_account_name(password, username, email):
            raise WeakPassword("the password must not contain the username or the e-mail address")


_SHORTEST_NAME = 3  # shorter names occur in strong passwords by chance


def _contains_account_name(password: str, username: str, email: str | None) -> bool:
    folded = password.casefold()
    names = [username, *([email, email.partition("@")[0]] if email else [])]
    return any(len(name) >= _SHORTEST_NAME and name.casefold() in folded for name in names)
