from __future__ import annotations

from typing import Any, Protocol

from authserver.protocol.models import Client, GrantType
from authserver.protocol.params import Params


class Grant(Protocol):
    grant_type: GrantType

    async def issue(self, params: Params, client: Client) -> dict[str, Any]: ...
