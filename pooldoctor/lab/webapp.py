"""A small real web app on a real SQLAlchemy pool, whose endpoints reproduce pool failure modes."""

from __future__ import annotations

import gc
import json
import logging
import socket
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SAWarning
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from pooldoctor.app import instrument, pool_status, prometheus, uninstrument
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.httpreply import log_access
from pooldoctor.status_schema import PoolStatusPayload

APP_ROLE = "lab_app"
HOT_ROW_ID = 1
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A stopping app waits this long for in-flight requests (each is bounded by pool_timeout or
# its own sleep), so nothing logs into a closed file afterwards.
DRAIN_SECONDS = 15.0
# Query parameters are clamped so a typo cannot hold a thread for minutes.
MAX_SLEEP_SECONDS = 30.0
GC_CLEANUP_WARNING = "The garbage collector is trying to clean up"
WORKER_THREAD_PREFIX = "AnyIO worker thread"
EXPORT_ROW_BYTES = 32 * 1024  # one row per FETCH, larger than the socket buffers below
EXPORT_SEND_BUFFER = 8 * 1024
MAX_EXPORT_ROWS = 200
EVENT_LOOP_ROUTES = ("/pool-status", "/metrics", "/health")
PEEK_BYTES = 64
PEEK_TIMEOUT_SECONDS = 2.0
TEXT_ROUTES: dict[str, Callable[[LabApp], str]] = {
    "/pool-status/text": lambda app: app.status_text(),
    "/metrics": lambda app: app.metrics(),
}

SCHEMA_SQL = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN;
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS orders (
  id bigserial PRIMARY KEY,
  item text NOT NULL,
  quantity integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS inventory (id integer PRIMARY KEY, stock integer NOT NULL);
INSERT INTO inventory VALUES ({HOT_ROW_ID}, 1000000) ON CONFLICT (id) DO NOTHING;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders, inventory TO {APP_ROLE};
GRANT USAGE ON SEQUENCE orders_id_seq TO {APP_ROLE};
"""


@dataclass(frozen=True)
class LabConfig:
    """How the lab app's engine is configured and how its endpoints misbehave."""

    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_pre_ping: bool = False
    pool_recycle: int = -1
    application_name: str = "lab-app"
    statement_timeout_ms: int | None = None
    connect_timeout: int = 5
    db_port: int | None = None  # connect through another port (the slow proxy) instead
    large_order: int = 100  # /orders rejects quantities above this, leaking its session
    error_buffer: int = 64  # recent errors kept with tracebacks (what keeps a leak alive)
    instrumented: bool = True  # pooldoctor.instrument(engine): holders with origins and threads
    # None: a thread per request (it finishes with the request); N: a fixed pool of N worker
    # threads that stay alive, as in AnyIO/Starlette's threadpool for sync endpoints.
    worker_threads: int | None = None

    def env_text(self, workers: int = 1, *, named: bool = False) -> str:
        """The app's settings as a KEY=VALUE env file, as a deployment would have it; `named`
        adds the application_name its connections carry (the incidents leave it out to show
        the app recognised by its pool evidence alone)."""
        lines = [
            f"DB_POOL_SIZE={self.pool_size}",
            f"DB_MAX_OVERFLOW={self.max_overflow}",
            f"DB_POOL_TIMEOUT={self.pool_timeout:g}",
            f"DB_POOL_PRE_PING={'true' if self.pool_pre_ping else 'false'}",
            f"DB_CONNECT_TIMEOUT={self.connect_timeout}",
            f"WEB_CONCURRENCY={workers}",
        ]
        if named:
            lines.append(f"APPLICATION_NAME={self.application_name}")
        if self.pool_recycle >= 0:  # -1, SQLAlchemy's "never", is left unset as in most apps
            lines.append(f"DB_POOL_RECYCLE={self.pool_recycle}")
        if self.statement_timeout_ms is not None:
            lines.append(f"DB_STATEMENT_TIMEOUT={self.statement_timeout_ms}ms")
        return "\n".join(lines) + "\n"


def plain_status(payload: PoolStatusPayload) -> dict[str, Any]:
    """The seed's plain payload, as most apps expose it: the numbers only, no holders."""
    return {
        "size": payload["size"],
        "checked_out": payload["checked_out"],
        "overflow": payload["overflow"],
        "timeout": payload["timeout"],
        "max_overflow": payload["max_overflow"],
    }


def ensure_schema(cluster: TempCluster) -> None:
    """Create the app's role, tables and hot row (idempotent)."""
    cluster.execute(SCHEMA_SQL)


def make_engine(cluster: TempCluster, config: LabConfig) -> Engine:
    """The app's SQLAlchemy engine: QueuePool with the configured limits, psycopg 3 driver."""
    url = cluster.url(user=APP_ROLE)
    if config.db_port is not None:
        url = url.replace(f":{cluster.port}/", f":{config.db_port}/")
    connect_args: dict[str, Any] = {
        "application_name": config.application_name,
        "connect_timeout": config.connect_timeout,
    }
    if config.statement_timeout_ms is not None:
        connect_args["options"] = f"-c statement_timeout={config.statement_timeout_ms}"
    return create_engine(
        url,
        poolclass=QueuePool,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout,
        pool_pre_ping=config.pool_pre_ping,
        pool_recycle=config.pool_recycle,
        pool_logging_name=config.application_name,
        connect_args=connect_args,
    )


class OrderRejected(ValueError):
    """A business-rule failure raised half-way through /orders (the seed incident's path)."""


def _number(query: Mapping[str, list[str]], name: str, default: float) -> float:
    try:
        value = float(query.get(name, [str(default)])[0])
    except ValueError:
        return default
    return max(value, 0.0)


def _seconds(query: Mapping[str, list[str]], name: str, default: float) -> float:
    return min(_number(query, name, default), MAX_SLEEP_SECONDS)


class AppLog:
    """A lab app's log file: the app's logger (INFO), its access logger and `extra` library
    loggers write there, and only there."""

    def __init__(self, path: Path, application_name: str, *extra: logging.Logger) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        formatter = logging.Formatter(LOG_FORMAT)
        formatter.converter = time.gmtime
        self.handler.setFormatter(formatter)
        self.log = logging.getLogger(f"lab.{application_name}")
        self.access = logging.getLogger(f"lab.{application_name}.access")
        self.loggers = [self.log, *extra]
        for logger in self.loggers:
            logger.addHandler(self.handler)
            logger.propagate = False
        self.log.setLevel(logging.INFO)

    def close(self) -> None:
        """Detach the file from every logger and close it."""
        for logger in self.loggers:
            logger.removeHandler(self.handler)
        self.handler.close()


class _Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


AppT = TypeVar("AppT", bound=_Startable)
ConfigT = TypeVar("ConfigT")


@contextmanager
def running_app(
    kind: Callable[[TempCluster, ConfigT, Path], AppT],
    cluster: TempCluster,
    config: ConfigT,
    log_path: Path,
) -> Iterator[AppT]:
    """Create the schema, start a `kind` app against the cluster; stop it on exit."""
    ensure_schema(cluster)
    app = kind(cluster, config, log_path)
    app.start()
    try:
        yield app
    finally:
        app.stop()


class LabApp:
    """The running app: its URL, engine, log file and the errors it is (wrongly) holding on to."""

    def __init__(self, cluster: TempCluster, config: LabConfig, log_path: Path) -> None:
        self.cluster = cluster
        self.config = config
        self.log_path = log_path
        self.engine = make_engine(cluster, config)
        if config.instrumented:
            instrument(self.engine)
        self.recent_errors: deque[BaseException] = deque(maxlen=config.error_buffer)
        pool_log = logging.getLogger(f"sqlalchemy.pool.impl.QueuePool.{config.application_name}")
        self._logs = AppLog(log_path, config.application_name, pool_log)
        self.log = self._logs.log
        self.access_log = self._logs.access
        pool_log.setLevel(logging.WARNING)
        self._in_flight = 0
        self._idle = threading.Condition()
        self._server = serve_requests(_handler_class(self), config.worker_threads)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"lab-{config.application_name}",
            daemon=True,
        )
        self._routes: dict[str, Callable[[Mapping[str, list[str]]], dict[str, Any]]] = {
            "/health": lambda _query: {"status": "ok"},
            "/pool-status": lambda _query: self.pool_status(),
            "/pool-status/plain": lambda _query: self.plain_pool_status(),
            "/quick": self._quick,
            "/work": self._work,
            "/orders": self._orders,
            "/slow": self._slow,
            "/external": self._external,
            "/locked": self._locked,
            "/audit": self._audit,
        }

    def url(self, path: str = "") -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def start(self) -> None:
        self._thread.start()
        self.log.info("lab app listening on %s (pool %s)", self.url(), self.engine.pool.status())

    def pool_status(self) -> dict[str, Any]:
        return dict(pool_status(self.engine))

    def plain_pool_status(self) -> dict[str, Any]:
        """The seed's own payload, as most apps expose it: numbers only, no holders."""
        return plain_status(pool_status(self.engine))

    def status_text(self) -> str:
        """SQLAlchemy's own `Pool.status()` line."""
        return self.engine.pool.status()

    def metrics(self) -> str:
        """Prometheus exposition of the pool, as prometheus_client would serve it."""
        return prometheus.exposition({self.config.application_name: self.engine}).decode()

    # --- endpoints -------------------------------------------------------------------------

    def _quick(self, _query: Mapping[str, list[str]]) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return {"value": conn.execute(text("SELECT 1")).scalar_one()}

    def _work(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        seconds = min(_number(query, "ms", 100.0) / 1000.0, MAX_SLEEP_SECONDS)
        with Session(self.engine) as session:
            session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
            count = session.execute(text("SELECT count(*) FROM orders")).scalar_one()
        return {"orders": count}

    def _orders(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        quantity = int(_number(query, "quantity", 1.0))
        session = Session(self.engine)
        order_id = session.execute(
            text("INSERT INTO orders (item, quantity) VALUES (:item, :q) RETURNING id"),
            {"item": "widget", "q": quantity},
        ).scalar_one()
        if quantity > self.config.large_order:
            # Returns 500 without rollback or close: the session keeps its connection.
            raise OrderRejected(
                f"order {order_id}: quantity {quantity} exceeds the limit {self.config.large_order}"
            )
        session.commit()
        session.close()
        return {"order": order_id}

    def _slow(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        seconds = _seconds(query, "s", 5.0)
        with Session(self.engine) as session, session.begin():
            session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        return {"slept": seconds}

    def _external(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        seconds = _seconds(query, "s", 2.0)
        with Session(self.engine) as session, session.begin():
            stock = session.execute(
                text("SELECT stock FROM inventory WHERE id = :id"), {"id": HOT_ROW_ID}
            ).scalar_one()
            time.sleep(seconds)  # the payment provider's API, called inside the transaction
            session.execute(
                text("INSERT INTO orders (item, quantity) VALUES ('external', 1)"),
            )
        return {"stock": stock}

    def _audit(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        seconds = min(_number(query, "ms", 100.0) / 1000.0, MAX_SLEEP_SECONDS)
        with Session(self.engine) as session:
            stock = session.execute(
                text("SELECT stock FROM inventory, pg_sleep(:s) WHERE id = :id"),
                {"id": HOT_ROW_ID, "s": seconds},
            ).scalar_one()
            self._write_audit(f"stock read: {stock}")
        return {"stock": stock}

    def _write_audit(self, entry: str) -> None:
        # A second checkout while the request's session still holds the first one.
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO orders (item, quantity) VALUES (:e, 0)"), {"e": entry})

    def export_rows(self, rows: int) -> Iterator[bytes]:
        """Rows of a server-side cursor, one FETCH per row, while the session stays open."""
        with Session(self.engine) as session:
            result = session.execute(
                text("SELECT n, repeat('x', :width) AS payload FROM generate_series(1, :rows) n"),
                {"width": EXPORT_ROW_BYTES, "rows": rows},
                execution_options={"stream_results": True, "max_row_buffer": 1},
            )
            for row in result.yield_per(1):
                yield f"{row.n},{row.payload}\n".encode()

    def _locked(self, _query: Mapping[str, list[str]]) -> dict[str, Any]:
        with Session(self.engine) as session, session.begin():
            session.execute(
                text("UPDATE inventory SET stock = stock - 1 WHERE id = :id"), {"id": HOT_ROW_ID}
            )
        return {"updated": HOT_ROW_ID}

    # --- request plumbing ------------------------------------------------------------------

    def handle(self, method: str, target: str) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        route = self._routes.get(parts.path)
        if route is None:
            return 404, {"error": f"no route {parts.path}"}
        try:
            return 200, route(parse_qs(parts.query))
        except Exception as exc:
            return self.failed(method, parts.path, exc)

    def failed(self, method: str, path: str, exc: Exception) -> tuple[int, dict[str, Any]]:
        """Log the error with its traceback and keep it (as the seed app does): a 500."""
        self.log.error("%s %s failed", method, path, exc_info=exc)
        self.recent_errors.append(exc)
        detail = next(iter(str(exc).splitlines()), "")
        return 500, {"error": type(exc).__name__, "detail": detail}

    def enter(self) -> None:
        with self._idle:
            self._in_flight += 1

    def leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def stop(self) -> None:
        """Stop serving, wait (bounded) for in-flight requests, release every connection."""
        self._server.shutdown()
        self._server.server_close()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=DRAIN_SECONDS)
        with warnings.catch_warnings():
            # Dropping the held errors frees leaked sessions: SQLAlchemy logs its GC-cleanup
            # error to the app log (wanted) and also warns (noise here).
            warnings.filterwarnings("ignore", GC_CLEANUP_WARNING, SAWarning)
            self.recent_errors.clear()
            gc.collect()
        self.engine.dispose()
        uninstrument(self.engine)
        self._logs.close()
        for logger in self._logs.loggers:
            # Late pool messages (a straggler's connection returned after dispose) are dropped
            # rather than falling through to logging's stderr last resort.
            if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
                logger.addHandler(logging.NullHandler())


class WorkerPoolHTTPServer(HTTPServer):
    """Requests served by a fixed pool of worker threads that outlive each request (AnyIO-style)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], workers: int) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._workers = ThreadPoolExecutor(workers, thread_name_prefix=WORKER_THREAD_PREFIX)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like an async endpoint on the event loop, the status routes skip the worker threads.
        request.settimeout(PEEK_TIMEOUT_SECONDS)
        try:
            head = request.recv(PEEK_BYTES, socket.MSG_PEEK)
        except OSError:
            head = b""
        request.settimeout(None)
        if any(head.startswith(b"GET " + path.encode()) for path in EVENT_LOOP_ROUTES):
            threading.Thread(
                target=self._serve, args=(request, client_address), daemon=True
            ).start()
        else:
            self._workers.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._workers.shutdown(wait=False, cancel_futures=True)


def serve_requests(handler: type[BaseHTTPRequestHandler], workers: int | None) -> HTTPServer:
    """A thread per request, or a fixed pool of `workers` threads."""
    if workers is not None:
        return WorkerPoolHTTPServer(handler, workers)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server


def _handler_class(app: LabApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "pooldoctor-lab/1"

        def do_GET(self) -> None:
            app.enter()
            started = time.monotonic()
            try:
                path = urlsplit(self.path).path
                if path == "/export":
                    self._export(started)
                elif path in TEXT_ROUTES:
                    text_body = TEXT_ROUTES[path](app)
                    self._send(200, text_body.encode(), "text/plain; version=0.0.4", started)
                else:
                    status, payload = app.handle("GET", self.path)
                    self._send(status, json.dumps(payload).encode(), "application/json", started)
            except OSError:
                pass  # the client gave up; nothing to answer
            finally:
                app.leave()

        def _send(self, status: int, body: bytes, content_type: str, started: float) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self._access(status, len(body), started)

        def _export(self, started: float) -> None:
            query = parse_qs(urlsplit(self.path).query)
            rows = int(min(_number(query, "rows", 10.0), MAX_EXPORT_ROWS))
            # A small send buffer: the slow client's pace reaches the generator (backpressure).
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, EXPORT_SEND_BUFFER)
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            sent = 0
            for chunk in app.export_rows(rows):
                self.wfile.write(chunk)
                sent += len(chunk)
            self._access(200, sent, started)

        def _access(self, status: int, size: int, started: float) -> None:
            log_access(
                app.access_log,
                self.requestline,
                status,
                size,
                started,
                client=self.client_address[0],
                agent=self.headers.get("User-Agent", "-"),
            )

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log: the app log has its own lines."""

    return Handler


def run_lab_app(
    cluster: TempCluster, config: LabConfig, log_path: Path
) -> AbstractContextManager[LabApp]:
    """Start the lab app against the cluster; stop it and release its connections on exit."""
    return running_app(LabApp, cluster, config, log_path)
