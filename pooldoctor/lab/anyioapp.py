"""A separate-process app on AnyIO worker threads that leaks a Session on an error path.

Run as `python -m pooldoctor.lab.anyioapp URL LOG NAME POOL_SIZE POOL_TIMEOUT THREADS`. It serves
HTTP on 127.0.0.1 (the port is printed as `listening PORT`), runs every request in
`anyio.to_thread.run_sync` (AnyIO keeps its worker threads alive between requests), never calls
pooldoctor.instrument, and exposes only the seed's plain pool-status JSON. /orders rejects a large
order half-way and keeps the exception (with the Session in its traceback) without closing it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from pooldoctor.lab.httpreply import json_response, log_access

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LARGE_ORDER = 100
MAX_REQUEST_BYTES = 16384
READ_TIMEOUT_SECONDS = 5.0


class OrderRejected(ValueError):
    """A business-rule failure raised half-way through /orders."""


class OrdersApp:
    """The app: its engine, its routes, its log."""

    def __init__(self, url: str, name: str, pool_size: int, pool_timeout: float) -> None:
        self.engine: Engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            connect_args={"application_name": name, "connect_timeout": 5},
        )
        self.log = logging.getLogger(f"app.{name}")
        self.access = logging.getLogger(f"app.{name}.access")
        self.recent_errors: list[BaseException] = []  # kept for a debug page: the leak's anchor

    def route(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        try:
            if path == "/pool-status":
                return 200, self.pool_status()
            if path == "/orders":
                return 200, self.orders(int(query.get("quantity", ["1"])[0]))
            if path == "/quick":
                with self.engine.connect() as conn:
                    return 200, {"value": conn.execute(text("SELECT 1")).scalar_one()}
            return 404, {"error": f"no route {path}"}
        except Exception as exc:
            self.log.error("GET %s failed", path, exc_info=exc)
            self.recent_errors.append(exc)
            return 500, {"error": type(exc).__name__}

    def orders(self, quantity: int) -> dict[str, Any]:
        session = Session(self.engine)
        order_id = session.execute(
            text("INSERT INTO orders (item, quantity) VALUES ('widget', :q) RETURNING id"),
            {"q": quantity},
        ).scalar_one()
        if quantity > LARGE_ORDER:
            raise OrderRejected(f"order {order_id}: quantity {quantity} exceeds {LARGE_ORDER}")
        session.commit()
        session.close()
        return {"order": order_id}

    def pool_status(self) -> dict[str, Any]:
        """The seed's plain payload: numbers only."""
        pool = self.engine.pool
        assert isinstance(pool, QueuePool)
        return {
            "size": pool.size(),
            "checked_out": pool.checkedout(),
            "overflow": pool.overflow(),
            "timeout": pool.timeout(),
            "max_overflow": pool._max_overflow,
        }


async def _serve_one(app: OrdersApp, limiter: anyio.CapacityLimiter, stream: Any) -> None:
    async with stream:
        started = time.monotonic()
        data = b""
        with anyio.move_on_after(READ_TIMEOUT_SECONDS):
            while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST_BYTES:
                data += await stream.receive()
        request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3:
            return
        target = urlsplit(parts[1])
        work = partial(app.route, target.path, parse_qs(target.query))
        status, payload = await anyio.to_thread.run_sync(work, limiter=limiter)
        body = json.dumps(payload).encode()
        await stream.send(json_response(status, body))
        log_access(app.access, request_line, status, len(body), started)


async def serve(app: OrdersApp, threads: int) -> None:
    """Serve until killed; print the port once listening."""
    limiter = anyio.CapacityLimiter(threads)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    print(f"listening {port}", flush=True)

    async def handle(stream: Any) -> None:
        await _serve_one(app, limiter, stream)

    await listener.serve(handle)


def main(argv: list[str]) -> None:
    url, log_path, name, pool_size, pool_timeout, threads = argv
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    app = OrdersApp(url, name, int(pool_size), float(pool_timeout))
    anyio.run(serve, app, int(threads))


if __name__ == "__main__":
    main(sys.argv[1:])
