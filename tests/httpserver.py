"""A real local HTTP server for tests: routes map a path to a canned or computed response."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Response:
    """What a route answers: status, body, headers, and an optional delay before answering."""

    status: int = 200
    body: bytes | str = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip_interval: float = 0.0  # > 0: send the body one byte at a time, pausing this long


Route = Response | Callable[[], Response]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?")[0])
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        self.server.request_headers[self.path] = dict(self.headers.items())
        response = route() if callable(route) else route
        if response is None:
            response = Response(404, "not found", "text/plain")
        if response.delay:
            time.sleep(response.delay)
        body = response.body.encode() if isinstance(response.body, str) else response.body
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if response.drip_interval > 0:
                self._drip(body, response.drip_interval)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _drip(self, body: bytes, interval: float) -> None:
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            time.sleep(interval)

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    routes: dict[str, Route]
    hits: dict[str, int]
    request_headers: dict[str, dict[str, str]]

    def handle_error(self, request: object, client_address: object) -> None:
        return  # failed TLS handshakes and dropped clients are expected in tests


@dataclass
class LocalHTTPServer:
    """Handle to a running server: set `routes[path]`, build URLs with `url(path)`."""

    server: _Server

    @property
    def routes(self) -> dict[str, Route]:
        return self.server.routes

    @property
    def hits(self) -> dict[str, int]:
        return self.server.hits

    @property
    def request_headers(self) -> dict[str, dict[str, str]]:
        """Headers of the latest request per path (query included)."""
        return self.server.request_headers

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def scheme(self) -> str:
        return "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


@contextmanager
def serve_http(tls: ssl.SSLContext | None = None) -> Iterator[LocalHTTPServer]:
    """Run a threaded HTTP server on 127.0.0.1 with an ephemeral port (HTTPS given a context)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        # Handshake in the handler thread, so a stalled client cannot block accept().
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    server.routes = {}
    server.hits = {}
    server.request_headers = {}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield LocalHTTPServer(server)
    finally:
        server.shutdown()
        server.server_close()
