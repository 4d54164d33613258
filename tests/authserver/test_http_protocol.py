"""The server's HTTP protocol (uvicorn's httptools protocol with each response's head sent in the same write
as its body): driven here through uvicorn's own request handling, against a transport that records every
write. End to end it serves every test that starts ``authserver serve``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from authserver.serving.http_protocol import UVICORN_HTTP, HttpProtocol

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)


class Exchange:
    """One connection to an ASGI app through the server's protocol; ``done`` is set once the app returns."""

    def __init__(self, app: Callable[[dict[str, Any], Receive, Send], Awaitable[None]]) -> None:
        self.done = asyncio.Event()

        async def tracked(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            finally:
                self.done.set()

        config = Config(app=tracked, http=UVICORN_HTTP, log_level="critical", proxy_headers=False)
        config.load()
        assert config.http_protocol_class is HttpProtocol
        self.transport = RecordingTransport()
        self.protocol = HttpProtocol(config=config, server_state=ServerState(), app_state={})
        self.protocol.connection_made(self.transport)

    async def request(self, raw: bytes) -> list[bytes]:
        """Sends ``raw``; the writes made for it once the app has returned (uvicorn completes a response
        inside its last ``send``, and handles an app's failure before this task runs again)."""
        self.done.clear()
        before = len(self.transport.writes)
        self.protocol.data_received(raw)
        await self.done.wait()
        return self.transport.writes[before:]


async def respond_json(send: Send, body: bytes = b'{"ok":true}') -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def json_app() -> Callable[[dict[str, Any], Receive, Send], Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await receive()
        await respond_json(send)

    return app


GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def test_a_response_leaves_in_one_write_head_first() -> None:
    writes = await Exchange(json_app()).request(GET)
    assert len(writes) == 1
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
    assert body == b'{"ok":true}'


async def test_every_response_on_a_kept_alive_connection_is_one_write() -> None:
    exchange = Exchange(json_app())
    for _ in range(3):
        writes = await exchange.request(GET)
        assert len(writes) == 1 and writes[0].endswith(b'{"ok":true}')
    assert not exchange.transport.closed


async def test_a_head_request_gets_its_head_without_waiting_for_a_body() -> None:
    # uvicorn writes no body for HEAD: the held head goes out when the response completes.
    writes = await Exchange(json_app()).request(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n")


async def test_100_continue_is_sent_at_once_and_the_response_still_in_one_write() -> None:
    asking = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        asking.set()
        await receive()  # uvicorn answers 100 Continue as the app first asks for the body
        await respond_json(send)

    form = b"grant_type=client_credentials"
    raw = (
        b"POST /token HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(form)
    )
    exchange = Exchange(app)
    exchange.protocol.data_received(raw)
    await asking.wait()
    assert exchange.transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    exchange.protocol.data_received(form)
    await exchange.done.wait()
    assert len(exchange.transport.writes) == 2
    assert exchange.transport.writes[1].startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_streamed_body_starts_with_the_head_and_goes_on_as_written() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # chunked
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    writes = await Exchange(app).request(GET)
    assert len(writes) == 3
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n5\r\nfirst\r\n")
    assert writes[1:] == [b"6\r\nsecond\r\n", b"0\r\n\r\n"]


async def test_an_app_that_fails_after_starting_still_sends_the_head_before_closing() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        raise RuntimeError("broke mid-response")

    exchange = Exchange(app)
    writes = await exchange.request(GET)
    assert exchange.transport.closed
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
