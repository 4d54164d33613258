"""Reading ``application/x-www-form-urlencoded`` bodies strictly and cheaply (RFC 6749 §3.2)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from starlette.requests import Request

from authserver.protocol.errors import InvalidRequest

_MAX_FIELDS = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


async def read_form(request: Request) -> dict[str, list[str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    body = await request.body()
    try:
        text = body.decode("utf-8")
        params = parse_qs(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not valid UTF-8") from None
    except ValueError:
        raise InvalidRequest("the body has too many fields") from None
    return _without_control_characters(params)


def _without_control_characters(params: dict[str, list[str]]) -> dict[str, list[str]]:
    """No OAuth parameter may carry control characters (RFC 6749 Appendix A); PostgreSQL refuses NUL."""
    for name, values in params.items():
        if _CONTROL.search(name) or any(_CONTROL.search(value) for value in values):
            raise InvalidRequest("parameters must not contain control characters")
    return params


def query_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return _without_control_characters(params)


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
