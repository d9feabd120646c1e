"""A hostile peer speaking just enough of the PostgreSQL wire protocol (startup, extended query)
to play a PgBouncer admin console that answers as a test wants: hangs, huge or malformed rows,
errors that echo secrets."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

TEXT_OID = 25
INT8_OID = 20
NUMERIC_OID = 1700


@dataclass
class Answer:
    """What the peer sends for one SHOW: columns (name, type oid) and rows of text values, an
    error message, or nothing at all (`hang`)."""

    columns: list[tuple[str, int]] = field(default_factory=list)
    rows: Iterable[Sequence[str | None]] = field(default_factory=list)
    error: str | None = None
    hang: bool = False


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _row_description(columns: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", len(columns))
    for name, oid in columns:
        body += name.encode() + b"\x00" + struct.pack("!IhIhih", 0, 0, oid, -1, -1, 0)
    return _message(b"T", body)


def _data_row(values: Sequence[str | None]) -> bytes:
    body = struct.pack("!H", len(values))
    for value in values:
        if value is None:
            body += struct.pack("!i", -1)
        else:
            data = value.encode()
            body += struct.pack("!i", len(data)) + data
    return _message(b"D", body)


def _error(message: str) -> bytes:
    return _message(b"E", b"SERROR\x00VERROR\x00C08P01\x00M" + message.encode() + b"\x00\x00")


READY = _message(b"Z", b"I")
STARTED = (
    _message(b"R", struct.pack("!I", 0))
    + _message(b"S", b"client_encoding\x00UTF8\x00")
    + _message(b"S", b"server_version\x001.21.0/bouncer\x00")
    + _message(b"K", struct.pack("!II", 1, 2))
    + READY
)


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = conn.recv(size - len(data))
        if not piece:
            raise ConnectionError("peer closed")
        data += piece
    return data


def _serve(conn: socket.socket, answer: Callable[[str], Answer], stop: threading.Event) -> None:
    with conn:
        conn.settimeout(60)
        try:
            while True:  # startup packets (SSL/GSS requests are declined)
                length, code = struct.unpack("!II", _read_exact(conn, 8))
                _read_exact(conn, length - 8)
                if code in (80877103, 80877104):
                    conn.sendall(b"N")
                    continue
                conn.sendall(STARTED)
                break
            query = ""
            while True:
                kind = _read_exact(conn, 1)
                (length,) = struct.unpack("!I", _read_exact(conn, 4))
                body = _read_exact(conn, length - 4)
                if kind == b"X":
                    return
                if kind in (b"P", b"Q"):
                    start = body.index(b"\x00") + 1 if kind == b"P" else 0
                    query = body[start : body.index(b"\x00", start)].decode()
                if kind not in (b"S", b"Q"):
                    continue
                reply = answer(query.removeprefix("SHOW ").strip())
                if reply.hang:
                    stop.wait(120)
                    return
                if reply.error is not None:
                    conn.sendall(_error(reply.error) + READY)
                    continue
                head = (_message(b"1", b"") + _message(b"2", b"")) if kind == b"S" else b""
                conn.sendall(head + _row_description(reply.columns))
                batch: list[bytes] = []
                for row in reply.rows:
                    batch.append(_data_row(row))
                    if len(batch) == 1000:
                        if stop.is_set():
                            return
                        conn.sendall(b"".join(batch))
                        batch = []
                conn.sendall(b"".join(batch))
                conn.sendall(_message(b"C", b"SHOW\x00") + READY)
        except (OSError, ConnectionError, ValueError, struct.error):
            return


@contextmanager
def serve_tcp(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[int]:
    """Run `handle(conn, stop)` in a thread per connection on 127.0.0.1; yields the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@contextmanager
def fake_console(answer: Callable[[str], Answer]) -> Iterator[str]:
    """Serve `answer(what)` for every `SHOW what` on 127.0.0.1; yields a DSN for it."""
    with serve_tcp(lambda conn, stop: _serve(conn, answer, stop)) as port:
        yield f"host=127.0.0.1 port={port} dbname=pgbouncer user=stats sslmode=disable"
