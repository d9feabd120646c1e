"""A TCP proxy on 127.0.0.1 that holds each new connection before forwarding it (slow connects)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Loops wake at least this often to notice stop().
POLL_SECONDS = 0.1
CHUNK = 65536


class SlowProxy:
    """Forward 127.0.0.1:<port> to a target, starting each connection `delay` seconds late."""

    def __init__(self, target_port: int, delay: float, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_SECONDS)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    def start(self) -> SlowProxy:
        self._acceptor.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            if self._stop.wait(self.delay):
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError:
                return
            with upstream:
                self._pump(client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=POLL_SECONDS):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(CHUNK)
                        if not data:
                            return
                        peers[source].setblocking(True)
                        peers[source].sendall(data)
                        peers[source].setblocking(False)
                    except OSError:
                        return

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(timeout=2.0)
        for thread in self._threads:
            thread.join(timeout=2.0)


@contextmanager
def slow_proxy(target_port: int, delay: float) -> Iterator[SlowProxy]:
    """A running SlowProxy for the duration of the block."""
    proxy = SlowProxy(target_port, delay).start()
    try:
        yield proxy
    finally:
        proxy.stop()
