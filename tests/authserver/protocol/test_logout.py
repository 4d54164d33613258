"""``protocol/logout.py``'s decision (RP-Initiated Logout 1.0 §2): when the user must be asked, and which
sessions a sign-out ends."""

from __future__ import annotations

import pytest

from authserver.protocol.logout import LogoutRequest, needs_confirmation, sessions_to_end

HINTED = LogoutRequest(hint_subject="u-1", hint_session_id="s-1", client_id="c-1")
NO_HINT = LogoutRequest(client_id="c-1")
HINT_WITHOUT_SID = LogoutRequest(hint_subject="u-1", client_id="c-1")


@pytest.mark.parametrize(
    ("request_", "browser", "ask", "ends"),
    [
        (HINTED, "s-1", False, ["s-1"]),  # the hint is the browser's own session: trusted
        (HINTED, None, False, ["s-1"]),  # the browser has none: the hint's session (if any is left) ends
        (HINTED, "s-2", True, ["s-2", "s-1"]),  # another session than the browser's: the OP MUST ask
        (HINT_WITHOUT_SID, "s-2", True, ["s-2"]),  # no sid to tell whose session: asked
        (NO_HINT, "s-2", True, ["s-2"]),  # no hint: asked
        (NO_HINT, None, False, []),  # nothing to end, nothing to ask
    ],
)
def test_who_is_asked_and_what_ends(
    request_: LogoutRequest, browser: str | None, ask: bool, ends: list[str]
) -> None:
    assert needs_confirmation(request_, browser) is ask
    assert sessions_to_end(request_, browser) == ends


def test_the_signed_request_round_trips_and_unknown_keys_are_ignored() -> None:
    full = LogoutRequest("u-1", "s-1", "c-1", "https://rp.example.com/bye?state=x")
    assert LogoutRequest.from_dict(full.to_dict()) == full
    assert LogoutRequest.from_dict({"unknown": 1}) == LogoutRequest()
