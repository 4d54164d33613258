"""The conformance suite's test configuration for Authyard, and the browser steps in it.

The suite (openid-certification/conformance-suite) takes one JSON document per plan run: where the OP's
discovery document is, the two static clients it authenticates as, and ``browser`` steps that its headless
browser (HtmlUnit, inside the suite) replays on our login and consent pages. This module writes that document
from what ``authserver clients create`` printed; the selectors it uses are the element ids of
authserver/web/templates/login.html, consent.html and error.html (and, for the RP-initiated logout plan,
logout_confirm.html, logged_out.html and logout_error.html), and tests/conformance checks each of them
against a real server's pages.

    python -m conformance.suite_config --issuer URL --suite-base-url URL --client F --client2 F \
        --username U --password-file F > config.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ALIAS = "authyard"
# The suite's public address when it runs from its docker-compose.yml (its dev mode); the redirect URI the
# suite sends is <base>/test/a/<alias>/callback, which the clients are registered with.
SUITE_BASE_URL = "https://localhost.emobix.co.uk:8443"

# The element ids of our pages (authserver/web/templates). A renamed id must be renamed here too, or the
# suite's browser stops at the first page: tests/conformance/test_suite_config.py catches it locally.
USERNAME_FIELD = "username"
PASSWORD_FIELD = "password"  # noqa: S105 -- an element id, not a password
SIGN_IN_BUTTON = "sign-in"
ALLOW_BUTTON = "allow"
# The error page (a redirect URI that is not registered is never redirected to: RFC 6749 §3.1.2.4).
ERROR_HEADING_XPATH = "//h1"
ERROR_HEADING_TEXT = "sign-in request cannot continue"

# The end-session endpoint's pages (RP-Initiated Logout 1.0): the confirmation's button, the headings of the
# signed-out page and of the error page (a bad hint or post_logout_redirect_uri is never redirected to).
SIGN_OUT_BUTTON = "sign-out"
SIGNED_OUT_TEXT = "You are signed out"
LOGOUT_ERROR_TEXT = "sign-out request cannot continue"

# The suite's own page at the end of a front-channel round trip: it shows this element once it has the
# authorization response.
SUITE_DONE_ELEMENT = "submission_complete"
WAIT_SECONDS = 10


def redirect_uri(suite_base_url: str = SUITE_BASE_URL, alias: str = ALIAS) -> str:
    return f"{suite_base_url.rstrip('/')}/test/a/{alias}/callback"


def post_logout_redirect_uri(suite_base_url: str = SUITE_BASE_URL, alias: str = ALIAS) -> str:
    """What the logout plan's static clients must register: the redirect URI with ``post_logout_redirect``
    after the alias."""
    return f"{suite_base_url.rstrip('/')}/test/a/{alias}/post_logout_redirect"


def backchannel_logout_uri(suite_base_url: str = SUITE_BASE_URL, alias: str = ALIAS) -> str:
    """What the back-channel logout plan's static client must register: the redirect URI with
    ``backchannel_logout`` after the alias (the module's summary says so)."""
    return f"{suite_base_url.rstrip('/')}/test/a/{alias}/backchannel_logout"


def _sign_in(issuer: str, username: str, password: str, *, screenshot: bool) -> dict[str, Any]:
    commands: list[list[Any]] = []
    if screenshot:
        # Modules that ask for a second sign-in (oidcc-prompt-login, oidcc-max-age-1) want proof that the
        # login page was shown again: the suite records the page when this wait succeeds.
        commands.append(
            ["wait", "id", SIGN_IN_BUTTON, WAIT_SECONDS, "Sign in", "update-image-placeholder-optional"]
        )
    commands += [
        ["text", "id", USERNAME_FIELD, username],
        ["text", "id", PASSWORD_FIELD, password],
        ["click", "id", SIGN_IN_BUTTON],
    ]
    # Optional: with prompt=none, or an error sent back to the client, the browser is already at the
    # suite's callback and there is nothing to fill in.
    return {"task": "Sign in", "optional": True, "match": f"{issuer}/authorize?*", "commands": commands}


def _allow(issuer: str) -> dict[str, Any]:
    # The consent page is the answer to the sign-in POST, so the browser is at /authorize/login. Optional: a
    # server that remembers consent goes straight back to the client.
    return {
        "task": "Allow",
        "optional": True,
        "match": f"{issuer}/authorize/login*",
        "commands": [["click", "id", ALLOW_BUTTON]],
    }


def _done(alias: str) -> dict[str, Any]:
    return {
        "task": "Verify complete",
        "match": f"*/test/a/{alias}/callback*",
        "commands": [["wait", "id", SUITE_DONE_ELEMENT, WAIT_SECONDS]],
    }


def _flow(issuer: str, alias: str, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The suite starts a flow at the authorization URL it built from our discovery document.
    return [{"match": f"{issuer}/authorize*", "tasks": tasks}]


def browser_steps(issuer: str, username: str, password: str, alias: str = ALIAS) -> list[dict[str, Any]]:
    return _flow(
        issuer,
        alias,
        [_sign_in(issuer, username, password, screenshot=False), _allow(issuer), _done(alias)],
    )


def overrides(issuer: str, username: str, password: str, alias: str = ALIAS) -> dict[str, Any]:
    """Per-module browser steps where the default flow does not fit."""
    second_sign_in = _flow(
        issuer,
        alias,
        [_sign_in(issuer, username, password, screenshot=True), _allow(issuer), _done(alias)],
    )
    error_page = _flow(
        issuer,
        alias,
        [
            {
                "task": "Expect the error page",
                "match": f"{issuer}/authorize?*",
                "commands": [
                    [
                        "wait",
                        "xpath",
                        ERROR_HEADING_XPATH,
                        WAIT_SECONDS,
                        ERROR_HEADING_TEXT,
                        "update-image-placeholder",
                    ]
                ],
            }
        ],
    )
    return {
        "oidcc-prompt-login": {"browser": second_sign_in},
        "oidcc-max-age-1": {"browser": second_sign_in},
        "oidcc-ensure-registered-redirect-uri": {"browser": error_page},
        **logout_overrides(issuer, username, password, alias),
    }


def _logout_flow(issuer: str, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"match": f"{issuer}/logout*", "tasks": tasks}]


def _heading(task: str, issuer: str, text: str) -> dict[str, Any]:
    # The module waits for a screenshot of this page: the suite records it when the wait succeeds.
    return {
        "task": task,
        "match": f"{issuer}/logout*",
        "commands": [["wait", "xpath", ERROR_HEADING_XPATH, WAIT_SECONDS, text, "update-image-placeholder"]],
    }


def logout_flows(issuer: str) -> dict[str, list[dict[str, Any]]]:
    """The end-session endpoint's pages per RP-initiated logout module, where the browser does not simply go
    back to the suite: the confirmation (no id_token_hint), the signed-out page, the error page."""
    confirmed = _logout_flow(
        issuer,
        [
            {
                "task": "Confirm the sign-out",
                "match": f"{issuer}/logout*",
                "commands": [["click", "id", SIGN_OUT_BUTTON]],
            },
            _heading("Signed out", issuer, SIGNED_OUT_TEXT),
        ],
    )
    signed_out = _logout_flow(issuer, [_heading("Signed out", issuer, SIGNED_OUT_TEXT)])
    refused = _logout_flow(issuer, [_heading("Expect the error page", issuer, LOGOUT_ERROR_TEXT)])
    return {
        "oidcc-rp-initiated-logout-no-params": confirmed,
        "oidcc-rp-initiated-logout-only-state": confirmed,
        "oidcc-rp-initiated-logout-no-post-logout-redirect-uri": signed_out,
        "oidcc-rp-initiated-logout-bad-post-logout-redirect-uri": refused,
        "oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri": refused,
        "oidcc-rp-initiated-logout-no-id-token-hint": refused,
        "oidcc-rp-initiated-logout-modified-id-token-hint": refused,
        "oidcc-rp-initiated-logout-bad-id-token-hint": refused,
    }


def logout_overrides(issuer: str, username: str, password: str, alias: str) -> dict[str, Any]:
    """A module's browser steps replace the default ones: each signs in first, then meets its logout page."""
    sign_in = browser_steps(issuer, username, password, alias)
    return {module: {"browser": sign_in + flow} for module, flow in logout_flows(issuer).items()}


def suite_config(
    issuer: str,
    client: dict[str, Any],
    client2: dict[str, Any],
    username: str,
    password: str,
    alias: str = ALIAS,
) -> dict[str, Any]:
    """The configuration of both plans: static clients from ``authserver clients create`` output."""
    issuer = issuer.rstrip("/")

    def credentials(created: dict[str, Any]) -> dict[str, str]:
        return {"client_id": created["client_id"], "client_secret": created["client_secret"]}

    return {
        # With an alias the runner keeps this plan's modules in one queue, one at a time: they share the
        # callback URL and the same user.
        "alias": alias,
        "description": f"Authyard at {issuer}",
        "server": {"discoveryUrl": f"{issuer}/.well-known/openid-configuration"},
        "client": credentials(client),
        "client2": credentials(client2),
        "browser": browser_steps(issuer, username, password, alias),
        "override": overrides(issuer, username, password, alias),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client", required=True, type=Path, help="`authserver clients create` output")
    parser.add_argument("--client2", required=True, type=Path, help="the second client's output")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument("--alias", default=ALIAS)
    args = parser.parse_args(argv)
    config = suite_config(
        args.issuer,
        json.loads(args.client.read_text()),
        json.loads(args.client2.read_text()),
        args.username,
        args.password_file.read_text().strip(),
        args.alias,
    )
    json.dump(config, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
