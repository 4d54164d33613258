"""Request parameters as the protocol sees them: each name mapped to every value it was sent with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from authserver.protocol.errors import InvalidRequest

Params = Mapping[str, Sequence[str]]
# RFC 8707 allows several `resource` values, RFC 8693 §2.1 several `audience` values; every other parameter
# must appear at most once (RFC 6749 §3.1).
REPEATABLE = frozenset({"resource", "audience"})


def single(params: Params, name: str, *, required: bool = False) -> str | None:
    values = params.get(name) or ()
    if len(values) > 1 and name not in REPEATABLE:
        raise InvalidRequest(f"parameter '{name}' was sent more than once")
    value = values[0] if values else None
    if value == "":
        value = None
    if required and value is None:
        raise InvalidRequest(f"parameter '{name}' is required")
    return value


def required(params: Params, name: str) -> str:
    value = single(params, name, required=True)
    assert value is not None
    return value


def check_no_duplicates(params: Params) -> None:
    for name, values in params.items():
        if len(values) > 1 and name not in REPEATABLE:
            raise InvalidRequest(f"parameter '{name}' was sent more than once")
