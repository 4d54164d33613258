"""Reading ``application/x-www-form-urlencoded`` bodies strictly and cheaply (RFC 6749 §3.2)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

from authserver.protocol.errors import InvalidRequest

_MAX_FIELDS = 64


async def read_form(request: Request) -> dict[str, list[str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    body = await request.body()
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not valid UTF-8") from None
    except ValueError:
        raise InvalidRequest("the body has too many fields") from None


def query_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
