"""An RP's back-channel logout endpoint (OpenID Connect Back-Channel Logout 1.0 §2.5) for tests: a small
HTTP(S) server on loopback, in a thread, that records each request and answers as the test scripts it."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

HANG = -1  # a scripted answer: hold the request without answering until the test ends


@dataclass
class Receiver:
    """An RP's back-channel logout endpoint: records every request and answers as scripted (the last answer
    repeats)."""

    answers: list[int]
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)  # path, type, form
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    base: str = "http://127.0.0.1"

    @property
    def uri(self) -> str:
        return f"{self.base}:{self.port}/backchannel-logout?tenant=a"

    def tokens(self) -> list[str]:
        return [form["logout_token"][0] for path, _, form in self.requests if path.startswith("/backchannel")]


@contextlib.contextmanager
def receiving(*answers: int, tls: Path | None = None) -> Iterator[Receiver]:
    """A receiver on loopback; with ``tls`` (a PEM of certificate, chain and key for localhost) over https."""
    receiver = Receiver(list(answers))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
            receiver.requests.append((self.path, self.headers.get("content-type", ""), parse_qs(body)))
            answer = receiver.answers[min(len(receiver.requests), len(receiver.answers)) - 1]
            if answer == HANG:
                receiver.release.wait(30)
                answer = 200
            self.send_response(answer)
            if answer == 302:
                self.send_header("location", f"http://127.0.0.1:{receiver.port}/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        receiver.base = "https://localhost"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
