"""Leaks and their look-alikes as real apps under load on a shared cluster, captured as evidence.

Unlike `scenarios`, each incident here runs on a cluster the caller owns (the tests share one),
and several captures of one running incident can differ only in what the app exposes: the seed's
plain pool-status JSON, SQLAlchemy's `status()` text, Prometheus exposition, or instrumented
holders.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from pooldoctor.evidence import Evidence
from pooldoctor.lab.asyncapp import AsyncLabApp, AsyncLabConfig, run_async_lab_app
from pooldoctor.lab.capture import capture_lab
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.load import (
    BackgroundLoad,
    LoadBounds,
    LoadResult,
    LoadSpec,
    request_once,
    run_load,
)
from pooldoctor.lab.slowclient import disconnecting_request, slow_reader
from pooldoctor.lab.webapp import (
    APP_ROLE,
    WORKER_THREAD_PREFIX,
    LabApp,
    LabConfig,
    ensure_schema,
    run_lab_app,
)

POOL = 3
POOL_TIMEOUT = 1.0  # short, so waiters time out (3o7r) within a second of the pool pinning
SAMPLES = 3
INTERVAL_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_REQUESTS = 5000
BASELINE_REQUESTS = 30  # ordinary requests before the leak: the app's own request times
# The seed incident is sampled while its leaked transactions are 10-20 s old.
LEAK_AGE_SECONDS = 10.0
# The worker-thread variant only needs its leaks past the app's held age (3x pool_timeout).
WORKER_LEAK_AGE_SECONDS = 4.0
WAITERS = 3  # clients that keep asking while the pool is pinned (and time out)
OLD_BURST_AGE = timedelta(days=2)
OLD_BURST_ERRORS = 40

PAYLOAD_PATHS = {
    "plain": "/pool-status/plain",
    "text": "/pool-status/text",
    "prometheus": "/metrics",
    "instrumented": "/pool-status",
}


@dataclass
class Capture:
    """One capture of a running incident, and the load it was under."""

    name: str
    evidence: Evidence
    load: LoadResult = field(default_factory=LoadResult)
    worker_threads_alive: int = 0  # the app's pool worker threads alive when it was captured


_spec = LoadBounds(MAX_REQUESTS, REQUEST_TIMEOUT_SECONDS).spec


def capture_app(
    cluster: TempCluster,
    workdir: Path,
    env_text: str,
    pool_status_url: str | None,
    logs: Sequence[Path],
    *,
    samples: int = SAMPLES,
    interval: float = INTERVAL_SECONDS,
) -> Evidence:
    """The real pooldoctor capture of one app: pool status, pg_stat_activity, logs, config."""
    pool_status = (pool_status_url,) if pool_status_url else ()
    return capture_lab(
        workdir, env_text, cluster.dsn(), pool_status, logs, samples=samples, interval=interval
    )


def _config(name: str, **overrides: object) -> LabConfig:
    return LabConfig(
        pool_size=POOL,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT,
        application_name=name,
        **overrides,  # type: ignore[arg-type]
    )


@contextmanager
def _app(cluster: TempCluster, workdir: Path, config: LabConfig) -> Iterator[LabApp]:
    workdir.mkdir(parents=True, exist_ok=True)
    with run_lab_app(cluster, config, workdir / f"{config.application_name}.log") as app:
        yield app


def _leak(app: LabApp) -> None:
    """Ordinary orders first (the baseline), then POOL orders that take the leaking error path."""
    for _ in range(BASELINE_REQUESTS):
        request_once(app.url("/orders?quantity=2"), REQUEST_TIMEOUT_SECONDS)
    for _ in range(POOL):
        request_once(app.url("/orders?quantity=500"), REQUEST_TIMEOUT_SECONDS)


def write_old_burst(path: Path, source: Path, now: datetime) -> Path:
    """`source` preceded by a resolved burst of other errors two days before `now`."""
    start = now - OLD_BURST_AGE
    lines = []
    for n in range(OLD_BURST_ERRORS):
        at = start + timedelta(seconds=n * 0.5)
        stamp = at.strftime("%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}"
        access = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
        lines += [
            f"{stamp} ERROR lab.orders-api: GET /invoices failed",
            "Traceback (most recent call last):",
            '  File "/srv/app/invoices.py", line 88, in render_invoice',
            "    pdf = renderer.render(invoice)",
            '  File "/srv/app/pdf.py", line 12, in render',
            "    raise RenderTimeout(self.url)",
            "app.pdf.RenderTimeout: http://pdf-renderer:9000/render",
            f'{stamp} INFO lab.orders-api.access: 10.0.0.7 - - [{access}] "GET /invoices '
            'HTTP/1.1" 502 31 "-" "curl/8" 30.012',
        ]
    path.write_text("\n".join(lines) + "\n" + source.read_text(encoding="utf-8"), encoding="utf-8")
    return path


NEIGHBOUR_APP = "nightly-report"
# More than the app's own (POOL): the count alone would take the neighbour for the app.
NEIGHBOUR_SESSIONS = 2 * POOL
BACKUP_APP = "pg_dump"
BACKUP_STATEMENT_SECONDS = 30.0  # cancelled when the capture is done


@contextmanager
def neighbours(cluster: TempCluster) -> Iterator[None]:
    """Noise beside the app on its database: another application idle in transaction, and a
    backup's long statement that holds no app connection."""
    idle = [
        psycopg.connect(cluster.dsn(application_name=NEIGHBOUR_APP), connect_timeout=5)
        for _ in range(NEIGHBOUR_SESSIONS)
    ]
    for conn in idle:
        conn.execute("SELECT 1")  # opens a transaction, then sits idle in it
    backup = psycopg.connect(
        cluster.dsn(application_name=BACKUP_APP), autocommit=True, connect_timeout=5
    )
    running = threading.Thread(target=_long_statement, args=(backup,), daemon=True)
    running.start()
    try:
        yield
    finally:
        backup.cancel()
        running.join(timeout=REQUEST_TIMEOUT_SECONDS)
        backup.close()
        for conn in idle:
            conn.close()


def _long_statement(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_sleep(%s)", (BACKUP_STATEMENT_SECONDS,))


def exception_path_leak(
    cluster: TempCluster,
    workdir: Path,
    *,
    worker_threads: int | None = None,
    instrumented: bool = True,
) -> list[Capture]:
    """The seed incident: /orders leaks its session when it rejects a large order; afterwards
    every request times out waiting for the pinned pool. Captured once per pool-status payload
    while the leaked transactions are LEAK_AGE_SECONDS and more old. With worker threads, an
    instrumented app is captured with holders (threads still alive) and through its plain
    payload; with `instrumented=False` the app never calls pooldoctor.instrument."""
    if worker_threads is None:
        name, instrumented = "orders-api", False
    else:
        name = "orders-worker-api" if instrumented else "orders-plain-worker-api"
    config = _config(name, instrumented=instrumented, worker_threads=worker_threads)
    captures: list[Capture] = []
    with _app(cluster, workdir, config) as app:
        _leak(app)
        leaked_at = time.monotonic()
        waiters = _spec(["/orders?quantity=2", "/quick"], clients=WAITERS, seconds=60.0)
        with BackgroundLoad(app.url(), waiters) as load:
            age = LEAK_AGE_SECONDS if worker_threads is None else WORKER_LEAK_AGE_SECONDS
            time.sleep(max(0.0, age - (time.monotonic() - leaked_at)))
            payloads = ["plain", "text", "prometheus"]
            if worker_threads is not None:
                payloads = ["instrumented", "plain"] if instrumented else ["plain"]
            for payload in payloads:
                evidence = capture_app(
                    cluster,
                    workdir,
                    config.env_text(),
                    app.url(PAYLOAD_PATHS[payload]),
                    [app.log_path],
                )
                captures.append(Capture(payload, evidence, worker_threads_alive=_workers_alive()))
            if worker_threads is None:
                burst = write_old_burst(workdir / "with-old-burst.log", app.log_path, _now())
                evidence = capture_app(
                    cluster,
                    workdir,
                    config.env_text(),
                    app.url(PAYLOAD_PATHS["plain"]),
                    [burst],
                )
                captures.append(Capture("old-burst", evidence))
                with neighbours(cluster):
                    time.sleep(INTERVAL_SECONDS)  # the backup's statement is running
                    evidence = capture_app(
                        cluster,
                        workdir,
                        config.env_text(),
                        app.url(PAYLOAD_PATHS["plain"]),
                        [app.log_path],
                    )
                captures.append(Capture("neighbours", evidence))
        result = load.stop()
    for item in captures:
        item.load = result
    return captures


def _workers_alive() -> int:
    return sum(t.name.startswith(WORKER_THREAD_PREFIX) for t in threading.enumerate())


def _now() -> datetime:
    return datetime.now(UTC)


def _capture_under_load(
    cluster: TempCluster, workdir: Path, app: LabApp, spec: LoadSpec, delay: float
) -> tuple[Evidence, LoadResult]:
    """Capture the app (plain pool status and its log) `delay` seconds into `spec`'s load."""
    with BackgroundLoad(app.url(), spec) as load:
        time.sleep(delay)
        evidence = capture_app(
            cluster, workdir, app.config.env_text(), app.url("/pool-status/plain"), [app.log_path]
        )
    return evidence, load.stop()


ASYNC_CLIENTS = 4
ASYNC_LOAD_SECONDS = 2.0
ASYNC_CANCELLED_REQUESTS = 6  # per impatient client, each hanging up while its query holds
ASYNC_QUERY_SECONDS = 5.0  # the held await outlasts any client: its disconnect cancels the task


def async_gc_leak(cluster: TempCluster, workdir: Path, *, cancellations: bool) -> Capture:
    """An AsyncEngine app whose connections are dropped to the garbage collector: on an error
    path (no cancellation), or because client disconnects cancel the request task mid-query."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = "search-async-api" if cancellations else "lookup-async-api"
    config = AsyncLabConfig(
        pool_size=POOL, pool_timeout=POOL_TIMEOUT, application_name=name,
        cancel_on_disconnect=cancellations,
    )  # fmt: skip
    with run_async_lab_app(cluster, config, workdir / f"{name}.log") as app:
        for _ in range(BASELINE_REQUESTS):
            request_once(app.url("/lookup"), REQUEST_TIMEOUT_SECONDS)
        if cancellations:
            result = _impatient_clients(app)
        else:
            spec = _spec(["/lookup?fail=1", "/lookup"], ASYNC_CLIENTS, ASYNC_LOAD_SECONDS)
            result = run_load(app.url(), spec)
        evidence = capture_app(
            cluster,
            workdir,
            config.env_text(),
            app.url("/pool-status/plain"),
            [app.log_path],
        )
    return Capture("async-cancelled" if cancellations else "async-gc", evidence, result)


def _impatient_clients(app: AsyncLabApp) -> LoadResult:
    """ASYNC_CLIENTS clients that each send ASYNC_CANCELLED_REQUESTS requests and hang up once
    the app holds the request's connection (not after a fixed delay, which a slow machine
    outlasts before the connection is even taken, so that nothing leaks)."""
    result = LoadResult()
    started = time.monotonic()
    lock = threading.Lock()

    def client(number: int) -> None:
        for request in range(ASYNC_CANCELLED_REQUESTS):
            tag = f"{number}-{request}"
            url = app.url(f"/lookup?s={ASYNC_QUERY_SECONDS}&tag={tag}")
            held = disconnecting_request(url, app.expect(tag), REQUEST_TIMEOUT_SECONDS)
            with lock:
                result.statuses["disconnected" if held else "gave up"] += 1

    threads = [
        threading.Thread(target=client, args=(number,), daemon=True)
        for number in range(ASYNC_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ASYNC_CANCELLED_REQUESTS * REQUEST_TIMEOUT_SECONDS)
    result.elapsed_seconds = time.monotonic() - started
    return result


EXPORT_ROWS = 60
EXPORT_CLIENTS = POOL
EXPORT_READ_BYTES = 4096
EXPORT_READ_PAUSE_SECONDS = 0.05  # ~80 KB/s: one 32 KB row every ~0.4 s
EXPORT_CAPTURE_DELAY = 3.0


def streamed_export(cluster: TempCluster, workdir: Path) -> Capture:
    """Slow clients download an export streamed from a server-side cursor: every pooled session
    is held between chunks (FETCH FORWARD, idle in transaction) while other requests time out."""
    config = _config("export-api")
    with _app(cluster, workdir, config) as app:
        for _ in range(BASELINE_REQUESTS):
            request_once(app.url("/quick"), REQUEST_TIMEOUT_SECONDS)
        stop = threading.Event()
        readers = [
            threading.Thread(
                target=slow_reader,
                args=(app.url(f"/export?rows={EXPORT_ROWS}"), stop),
                kwargs={"chunk": EXPORT_READ_BYTES, "pause": EXPORT_READ_PAUSE_SECONDS},
                daemon=True,
            )
            for _ in range(EXPORT_CLIENTS)
        ]
        for reader in readers:
            reader.start()
        try:
            evidence, result = _capture_under_load(
                cluster, workdir, app, _spec(["/quick"], WAITERS, 30.0), EXPORT_CAPTURE_DELAY
            )
        finally:
            stop.set()
            for reader in readers:
                reader.join(REQUEST_TIMEOUT_SECONDS)
    return Capture("streaming", evidence, result)


DEADLOCK_CLIENTS = 2 * POOL
DEADLOCK_CAPTURE_DELAY = 3.5  # a few pool_timeout rounds of bursts before sampling


def threadpool_deadlock(cluster: TempCluster, workdir: Path) -> Capture:
    """Worker threads = pool size; each /audit request holds a session and asks for a second
    connection: every thread waits on the pool until pool_timeout, in bursts."""
    config = _config("audit-api", worker_threads=POOL)
    with _app(cluster, workdir, config) as app:
        for _ in range(BASELINE_REQUESTS):
            request_once(app.url("/quick"), REQUEST_TIMEOUT_SECONDS)
        evidence, result = _capture_under_load(
            cluster, workdir, app, _spec(["/audit"], DEADLOCK_CLIENTS, 30.0), DEADLOCK_CAPTURE_DELAY
        )
    return Capture("threadpool-deadlock", evidence, result)


INCIDENTS: dict[str, Callable[[TempCluster, Path], list[Capture]]] = {
    "exception-path-leak": lambda cluster, path: exception_path_leak(cluster, path),
    "threadpool-leak": lambda cluster, path: exception_path_leak(cluster, path, worker_threads=4),
    "async-gc-leak": lambda cluster, path: [async_gc_leak(cluster, path, cancellations=False)],
    "async-cancellation": lambda cluster, path: [async_gc_leak(cluster, path, cancellations=True)],
    "streamed-export": lambda cluster, path: [streamed_export(cluster, path)],
    "threadpool-deadlock": lambda cluster, path: [threadpool_deadlock(cluster, path)],
}


ANYIO_APP = "orders-anyio-api"
ANYIO_START_SECONDS = 20.0


@dataclass
class _Process:
    """A lab app running in its own process, reached over HTTP."""

    process: subprocess.Popen[str]
    port: int

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def threads(self) -> int:
        """The process's live OS threads (the event loop's plus AnyIO's workers)."""
        with contextlib.suppress(OSError):
            return len(os.listdir(f"/proc/{self.process.pid}/task"))
        return 0


@contextmanager
def _anyio_app(cluster: TempCluster, log_path: Path) -> Iterator[_Process]:
    ensure_schema(cluster)
    args = [
        sys.executable, "-m", "pooldoctor.lab.anyioapp", cluster.url(user=APP_ROLE),
        str(log_path), ANYIO_APP, str(POOL), f"{POOL_TIMEOUT:g}", str(POOL + 1),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        ready = select.select([process.stdout], [], [], ANYIO_START_SECONDS)[0]
        line = process.stdout.readline() if ready else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"{ANYIO_APP} did not start (exit {process.poll()})")
        yield _Process(process, int(line.split()[1]))
    finally:
        process.terminate()
        try:
            process.wait(REQUEST_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(REQUEST_TIMEOUT_SECONDS)


def anyio_thread_leak(cluster: TempCluster, workdir: Path) -> Capture:
    """The seed leak in a separate process serving on AnyIO worker threads, not instrumented,
    captured through its plain pool-status JSON while the threads that leaked are still alive."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = _config(ANYIO_APP, instrumented=False)
    log_path = workdir / f"{ANYIO_APP}.log"
    with _anyio_app(cluster, log_path) as app:
        for _ in range(BASELINE_REQUESTS):
            request_once(app.url("/orders?quantity=2"), REQUEST_TIMEOUT_SECONDS)
        for _ in range(POOL):
            request_once(app.url("/orders?quantity=500"), REQUEST_TIMEOUT_SECONDS)
        leaked_at = time.monotonic()
        waiters = _spec(["/orders?quantity=2", "/quick"], clients=WAITERS, seconds=60.0)
        with BackgroundLoad(app.url(), waiters) as load:
            time.sleep(max(0.0, WORKER_LEAK_AGE_SECONDS - (time.monotonic() - leaked_at)))
            evidence = capture_app(
                cluster, workdir, config.env_text(), app.url("/pool-status"), [log_path]
            )
            threads = app.threads()
        result = load.stop()
    return Capture("anyio", evidence, result, worker_threads_alive=threads)
