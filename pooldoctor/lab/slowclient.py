"""HTTP clients that misbehave on purpose: slow readers and clients that hang up early."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
MAX_READ_SECONDS = 60.0  # a slow reader never outlives this, whatever the server sends
RECEIVE_BUFFER_BYTES = 4096


def _open(url: str, receive_buffer: int | None = None) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connecting, so the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(CONNECT_TIMEOUT_SECONDS)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".encode())
    return sock


def slow_reader(url: str, stop: threading.Event, *, chunk: int, pause: float) -> int:
    """GET url and read `chunk` bytes every `pause` seconds until EOF, `stop` or the cap."""
    received = 0
    deadline = time.monotonic() + MAX_READ_SECONDS
    with _open(url, RECEIVE_BUFFER_BYTES) as sock:
        sock.settimeout(READ_TIMEOUT_SECONDS)
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                data = sock.recv(chunk)
            except OSError:
                break
            if not data:
                break
            received += len(data)
            stop.wait(pause)
    return received


def disconnecting_request(url: str, hang_up: threading.Event, timeout: float) -> bool:
    """Send a GET and hang up, before the answer, once `hang_up` is set (an impatient client
    whose patience ends at a moment the caller chooses); False if it was not set in time."""
    with _open(url):
        return hang_up.wait(timeout)
