"""Lists as environment variables carry them: ``a,b`` or JSON (``["a", "b"]``)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode


def _split_list(value: object) -> object:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


# NoDecode: pydantic-settings would otherwise parse the variable as JSON before the validator sees it.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]
