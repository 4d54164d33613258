"""The form parser of the token, introspection and revocation endpoints: exactly what the standard
library's ``parse_qs`` reads, and the same refusals, on any input."""

from __future__ import annotations

from urllib.parse import parse_qs, quote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from authserver.protocol.errors import InvalidRequest
from authserver.web.forms import parse_form

_CONTROL = {chr(code) for code in [*range(0x20), 0x7F]}

# Bodies built from the characters that matter to a form parser, and from encoded arbitrary text.
_form_characters = st.sampled_from([*"ab=&+%2F0%41z ;é", "%00", "%0a", "%zz", "%e9", "%C3%A9", "\x00"])
_raw_bodies = st.lists(_form_characters, max_size=40).map("".join)
_encoded_bodies = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=8).map(
    lambda pairs: "&".join(f"{quote_plus(name)}={quote_plus(value)}" for name, value in pairs)
)


def _reference(text: str) -> dict[str, list[str]] | str:
    """parse_qs with the endpoint's rules around it: at most 64 fields, no control characters."""
    try:
        params = parse_qs(text, keep_blank_values=True, max_num_fields=64)
    except ValueError:
        return "too many fields"
    if any(
        set(name) & _CONTROL or any(set(value) & _CONTROL for value in values)
        for name, values in params.items()
    ):
        return "control characters"
    return params


def _parsed(text: str) -> dict[str, list[str]] | str:
    try:
        return parse_form(text.encode())
    except InvalidRequest as error:
        return "too many fields" if "too many" in error.description else "control characters"


@settings(max_examples=400, deadline=None)
@given(st.one_of(_raw_bodies, _encoded_bodies))
@example("grant_type=client_credentials&scope=a+b%20c")
@example("a&a=&=b&&a=1")
@example("x=%00")
@example("x=%e9%zz")
@example("&".join(["a=1"] * 64))
@example("&".join(["a=1"] * 65))
def test_the_parser_reads_what_parse_qs_reads(text: str) -> None:
    assert _parsed(text) == _reference(text)


def test_invalid_utf8_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="UTF-8"):
        parse_form(b"scope=\xff")


def test_repeated_names_keep_every_value_in_order() -> None:
    assert parse_form(b"resource=https%3A%2F%2Fa&resource=https://b&scope=") == {
        "resource": ["https://a", "https://b"],
        "scope": [""],
    }
