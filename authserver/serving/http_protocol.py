"""uvicorn's httptools protocol, with each response's head sent in the same write as its body.

uvicorn writes a response's status line and headers the moment the app starts the response, and the body
in a second write: two ``send`` calls per response and, with ``TCP_NODELAY``, two segments the client
wakes up for. Nearly every response here is one JSON body, so the head is held until the first body write
and both leave in one: less worker CPU per token and more tokens per second (docs/performance.md).

Only the first write of a response is held, and only when it is a complete final head (not ``100
Continue``, which the client waits for before it sends the body). It goes out with the next write, or on
its own when the response completes without a body write (HEAD), when the connection closes, or before
any other use of the transport that could depend on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from authserver.serving import graceful_shutdown

# uvicorn's ``http=`` for ``authserver serve`` (and the benchmark's ceiling app, to stay comparable).
UVICORN_HTTP = "authserver.serving.http_protocol:HttpProtocol"
_HEAD_END = b"\r\n\r\n"
_INTERIM = b"HTTP/1.1 1"  # 1xx: sent at once


class HeadHoldingTransport:
    """The connection's transport, as uvicorn's protocol and request cycles use it."""

    __slots__ = ("_awaiting_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._awaiting_head = True

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif self._awaiting_head and not data.startswith(_INTERIM):
            self._awaiting_head = False
            if data.endswith(_HEAD_END):
                self._held = bytes(data)
                return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def response_complete(self) -> None:
        self.flush()
        self._awaiting_head = True

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        # Anything else uvicorn may reach for (buffer sizes and limits): the real transport's.
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """``authserver serve``'s HTTP protocol (uvicorn ``http=``): httptools, heads held for their bodies."""

    transport: HeadHoldingTransport  # type: ignore[assignment]  # an asyncio.Transport by duck typing

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's signature
        super().connection_made(HeadHoldingTransport(transport))  # type: ignore[arg-type]  # see HeadHoldingTransport

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if graceful_shutdown.draining() and self.cycle is not None:
            self.cycle.keep_alive = False  # "Connection: close": the client reconnects to another backend

    def on_response_complete(self) -> None:
        self.transport.response_complete()  # a HEAD response has no body write to carry its head
        super().on_response_complete()
