"""A client's jwks_uri for private_key_jwt tests: a small HTTP server on loopback, in a thread, serving one
JWK Set per path that a test may change (a client's key rotation), garbage, or nothing at all (it hangs)."""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

GARBAGE = b"<html>not a key set</html>"


@dataclass
class JwksServer:
    port: int = 0
    # path -> the JWK Set served there, or a script: "garbage", "hang" (no answer), "redirect" (302)
    documents: dict[str, Any] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)  # path -> GETs served
    release: threading.Event = field(default_factory=threading.Event)
    scheme: str = "http"

    def uri(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


def answer(
    handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes, kind: str = "application/json"
) -> None:
    handler.send_response(status)
    handler.send_header("content-type", kind)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextlib.contextmanager
def serving_on_loopback(
    handler: type[http.server.BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[int]:
    """``handler`` served by a threading HTTP server (HTTPS with ``tls``) on a free loopback port (yielded),
    stopped on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def serving_jwks(tls: ssl.SSLContext | None = None) -> Iterator[JwksServer]:
    state = JwksServer(scheme="https" if tls else "http")

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            state.hits[self.path] = state.hits.get(self.path, 0) + 1
            document = state.documents.get(self.path)
            if document == "hang":
                state.release.wait(30)
                return
            if document == "redirect":
                self.send_response(302)
                self.send_header("location", f"http://127.0.0.1:{state.port}/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            body = GARBAGE if document == "garbage" else json.dumps(document).encode()
            answer(self, 404 if document is None else 200, body)

    with serving_on_loopback(Handler, tls) as port:
        state.port = port
        try:
            yield state
        finally:
            state.release.set()  # a hanging answer ends before the server shuts down
