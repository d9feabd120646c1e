"""A small asyncio web app on SQLAlchemy's AsyncEngine whose error path leaks its connection."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pooldoctor.app import pool_status
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.httpreply import json_response, log_access
from pooldoctor.lab.webapp import APP_ROLE, AppLog, plain_status, running_app

MAX_SLEEP_SECONDS = 5.0
HEADER_LIMIT = 64  # request header lines read before giving up on a client
STOP_TIMEOUT_SECONDS = 10.0
GC_PERIOD_SECONDS = 0.1


@dataclass(frozen=True)
class AsyncLabConfig:
    """The async app's engine and how its requests behave."""

    pool_size: int = 5
    max_overflow: int = 0
    pool_timeout: float = 1.0
    application_name: str = "async-api"
    # Cancel a request's task when its client disconnects (some ASGI middlewares do).
    cancel_on_disconnect: bool = False

    def env_text(self) -> str:
        return (
            f"DB_POOL_SIZE={self.pool_size}\nDB_MAX_OVERFLOW={self.max_overflow}\n"
            f"DB_POOL_TIMEOUT={self.pool_timeout:g}\nWEB_CONCURRENCY=1\n"
        )


class LookupFailed(RuntimeError):
    """The business error raised after the connection was taken (the leaking path)."""


class AsyncLabApp:
    """An asyncio HTTP server in its own thread and event loop."""

    def __init__(self, cluster: TempCluster, config: AsyncLabConfig, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self._cluster = cluster
        self._logs = AppLog(log_path, config.application_name, logging.getLogger("sqlalchemy.pool"))
        self.log = self._logs.log
        self.access_log = self._logs.access
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._port = 0
        self._thread = threading.Thread(target=self._run, name="async-lab", daemon=True)
        self.engine: AsyncEngine | None = None
        self._holding: dict[str, threading.Event] = {}
        self._holding_lock = threading.Lock()

    def expect(self, tag: str) -> threading.Event:
        """Set once the request sent with `?tag=<tag>` holds its connection, or has ended."""
        with self._holding_lock:
            return self._holding.setdefault(tag, threading.Event())

    def _reached(self, tag: str | None) -> None:
        if tag is not None:
            self.expect(tag).set()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self._port}{path}"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(STOP_TIMEOUT_SECONDS):
            raise RuntimeError("async lab app did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve_until_stopped())

    async def _serve_until_stopped(self) -> None:
        config = self.config
        self.engine = create_async_engine(
            self._cluster.url(user=APP_ROLE),
            pool_size=config.pool_size,
            max_overflow=config.max_overflow,
            pool_timeout=config.pool_timeout,
            connect_args={"application_name": config.application_name},
        )
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        self._stopping = asyncio.Event()
        self._ready.set()
        housekeeping = asyncio.ensure_future(self._collect_garbage())
        async with server:
            await self._stopping.wait()
        housekeeping.cancel()
        await self.engine.dispose()

    async def _collect_garbage(self) -> None:
        """What a busy process's allocation rate does by itself: collect cycles promptly, so
        dropped connections reach the pool's garbage-collector cleanup."""
        while True:
            await asyncio.sleep(GC_PERIOD_SECONDS)
            gc.collect()

    def stop(self) -> None:
        if self._ready.is_set():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        self._logs.close()

    # --- endpoints -------------------------------------------------------------------------

    async def _lookup(self, fail: bool, seconds: float, tag: str | None) -> dict[str, Any]:
        assert self.engine is not None
        conn = await self.engine.connect()
        count = (await conn.execute(text("SELECT count(*) FROM orders"))).scalar_one()
        self._reached(tag)
        await asyncio.sleep(seconds)  # awaits another service while holding the connection
        if fail:
            raise LookupFailed(f"lookup of {count} orders failed validation")
        await conn.close()  # skipped by the error path and by a cancellation
        return {"orders": count}

    async def _route(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if path == "/pool-status/plain":
            assert self.engine is not None
            return 200, plain_status(pool_status(self.engine))
        if path == "/lookup":
            fail = query.get("fail", ["0"])[0] == "1"
            seconds = min(float(query.get("s", ["0"])[0]), MAX_SLEEP_SECONDS)
            tag = query.get("tag", [None])[0]
            try:
                return 200, await self._lookup(fail, seconds, tag)
            except Exception as exc:
                self.log.error("GET %s failed", path, exc_info=exc)
                return 500, {"error": type(exc).__name__}
            finally:
                self._reached(tag)  # a request that never held a connection ends all the same
        return 404, {"error": f"no route {path}"}

    # --- request plumbing ------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.monotonic()
        try:
            request_line = (await reader.readline()).decode("latin-1").strip()
            for _ in range(HEADER_LIMIT):
                if (await reader.readline()) in (b"\r\n", b"\n", b""):
                    break
            method, target, _version = request_line.split(" ", 2)
            parts = urlsplit(target)
            work = asyncio.ensure_future(self._route(parts.path, parse_qs(parts.query)))
            if self.config.cancel_on_disconnect:
                gone = asyncio.ensure_future(reader.read(1))  # b"" when the client hangs up
                await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done():
                    self.log.warning("client disconnected; cancelling %s %s", method, parts.path)
                    work.cancel()
                    try:
                        await work
                    except asyncio.CancelledError:
                        self.log.exception("%s %s cancelled", method, parts.path)
                    return
                gone.cancel()
            status, payload = await work
            body = json.dumps(payload).encode()
            writer.write(json_response(status, body))
            await writer.drain()
            log_access(self.access_log, request_line, status, len(body), started)
        except (OSError, ValueError):
            pass
        finally:
            writer.close()


def run_async_lab_app(
    cluster: TempCluster, config: AsyncLabConfig, log_path: Path
) -> AbstractContextManager[AsyncLabApp]:
    """Start the async app against the cluster; stop it and dispose its engine on exit."""
    return running_app(AsyncLabApp, cluster, config, log_path)
