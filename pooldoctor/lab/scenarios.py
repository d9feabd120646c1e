"""Real failure-mode situations (cluster + lab app + bounded load), captured as evidence."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pooldoctor.atomic import write_atomic
from pooldoctor.evidence import Evidence, evidence_to_json
from pooldoctor.lab.capture import capture_lab
from pooldoctor.lab.cluster import TempCluster, free_port
from pooldoctor.lab.load import BackgroundLoad, LoadBounds, LoadResult, LoadSpec, run_load
from pooldoctor.lab.proxy import slow_proxy
from pooldoctor.lab.webapp import APP_ROLE, HOT_ROW_ID, LabApp, LabConfig, run_lab_app
from pooldoctor.readings.leak import DEAD_THREAD_MIN_AGE_SECONDS
from pooldoctor.readings.thresholds import SLOW_QUERY_SECONDS

SAVE_ENV = "POOLDOCTOR_SAVE_SCENARIOS"
FIXTURE_MODE = 0o644  # fixtures are committed: readable like any other source file
# Capture settings: enough samples to see a trend, short enough to keep each scenario quick.
SAMPLES = 3
SERVER_LOG_NAME = "postgresql.log"
INTERVAL_SECONDS = 0.75
# A short pool_timeout makes the 3o7r error appear within a second of saturation.
FAST_POOL_TIMEOUT = 1.0
# Hard ceiling on any load request: longer than every deliberate wait below.
REQUEST_TIMEOUT_SECONDS = 20.0
MAX_REQUESTS = 10_000
# Teardown of long queries: cancel, re-check this often, give up after the deadline.
CANCEL_POLL_SECONDS = 0.2
CANCEL_DEADLINE_SECONDS = 10.0
# A latency-sensitive API's pool: enough for light traffic.
HEALTHY_POOL_SIZE = 5


Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    """Progress sink that prints nothing (tests)."""


@dataclass
class ScenarioRun:
    """One reproduced situation: its evidence, plus what the load saw while it was live."""

    mode: str
    evidence: Evidence
    load: LoadResult = field(default_factory=LoadResult)

    def merge_load(self, result: LoadResult) -> None:
        self.load.statuses.update(result.statuses)
        self.load.elapsed_seconds += result.elapsed_seconds


@dataclass
class _Stage:
    """A running cluster and lab apps, plus where their files are."""

    workdir: Path
    cluster: TempCluster
    apps: list[LabApp]

    def capture(
        self,
        config: LabConfig,
        *,
        workers: int = 1,
        samples: int = SAMPLES,
        interval: float = INTERVAL_SECONDS,
    ) -> Evidence:
        """Run the real pooldoctor capture against everything on this stage."""
        return capture_lab(
            self.workdir,
            config.env_text(workers, named=True),
            self.cluster.dsn(),
            [app.url("/pool-status") for app in self.apps],
            [*(app.log_path for app in self.apps), self.cluster.logfile],
            samples=samples,
            interval=interval,
        )

    def capture_under_load(
        self,
        spec: LoadSpec,
        delay: float,
        config: LabConfig,
        *,
        samples: int = SAMPLES,
        interval: float = INTERVAL_SECONDS,
    ) -> tuple[BackgroundLoad, Evidence]:
        """Start `spec` against the (only) app and capture `delay` seconds into it; the load
        runs on for the caller to end."""
        (app,) = self.apps
        load = BackgroundLoad(app.url(), spec).start()
        time.sleep(delay)
        return load, self.capture(config, samples=samples, interval=interval)

    def stop_and_cancel(self, load: BackgroundLoad) -> LoadResult:
        """End the load and cancel the app's running queries until no request is in flight."""
        load.request_stop()
        deadline = time.monotonic() + CANCEL_DEADLINE_SECONDS
        while load.running() and time.monotonic() < deadline:
            self.cluster.execute(
                f"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = '{APP_ROLE}'"
            )
            time.sleep(CANCEL_POLL_SECONDS)
        return load.wait()


@contextmanager
def _stage(
    workdir: Path,
    configs: Sequence[LabConfig],
    settings: Mapping[str, str] | None = None,
    port: int | None = None,
    progress: Progress = _quiet,
) -> Iterator[_Stage]:
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        cluster = TempCluster(settings=dict(settings or {}), port=port or 0)
        progress(
            f"starting a throwaway PostgreSQL {cluster.major} ({cluster.source}) on "
            f"127.0.0.1:{cluster.port}"
        )
        stack.enter_context(cluster)
        stack.callback(_keep_server_log, cluster, workdir)
        apps = []
        for config in configs:
            log_path = workdir / f"{config.application_name}.log"
            app = stack.enter_context(run_lab_app(cluster, config, log_path))
            progress(
                f"started lab app {config.application_name} at {app.url()} "
                f"(pool_size={config.pool_size}, max_overflow={config.max_overflow}, "
                f"pool_timeout={config.pool_timeout:g}s), logging to {log_path}"
            )
            apps.append(app)
        yield _Stage(workdir, cluster, apps)


def _keep_server_log(cluster: TempCluster, workdir: Path) -> None:
    """Copy the server log next to the app logs before the cluster directory is removed."""
    with contextlib.suppress(OSError):
        shutil.copyfile(cluster.logfile, workdir / SERVER_LOG_NAME)


def _describe(result: LoadResult) -> str:
    counts = ", ".join(f"{count} × {status}" for status, count in sorted(result.statuses.items()))
    return f"{result.total} requests ({counts})"


_spec = LoadBounds(MAX_REQUESTS, REQUEST_TIMEOUT_SECONDS).spec


def _saturating(app_name: str, pool_size: int, **overrides: object) -> LabConfig:
    """A small pool with a short pool_timeout, the shape most incident scenarios share."""
    return LabConfig(
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=FAST_POOL_TIMEOUT,
        application_name=app_name,
        **overrides,  # type: ignore[arg-type]
    )


# --- the scenarios ---------------------------------------------------------------------------

LEAK_POOL = 3
LEAK_LOAD_SECONDS = 2.5
LEAK_PATHS = ("/orders?quantity=2", "/orders?quantity=500", "/orders?quantity=3")
# After the traffic, a pause with no requests at all: every request thread has finished, so the
# connections still checked out are held by finished threads (the app's pool status says so),
# and the capture samples them idle in transaction in PostgreSQL across its samples.
LEAK_HOLD_SECONDS = DEAD_THREAD_MIN_AGE_SECONDS + 1.0


def connection_leak(workdir: Path, progress: Progress = _quiet) -> ScenarioRun:
    """The seed incident: /orders leaks its session on large orders; the pool stays full."""
    config = _saturating("orders-api", LEAK_POOL)
    with _stage(workdir, [config], progress=progress) as stage:
        (app,) = stage.apps
        progress(
            f"sending {LEAK_LOAD_SECONDS:g} s of traffic to /orders "
            f"(every third order is too large and takes the leaking error path)"
        )
        result = run_load(app.url(), _spec(LEAK_PATHS, clients=6, seconds=LEAK_LOAD_SECONDS))
        progress(f"traffic done: {_describe(result)}")
        progress(
            f"traffic has stopped; waiting {LEAK_HOLD_SECONDS:g} s: the request threads have "
            "finished, yet their leaked sessions stay checked out"
        )
        time.sleep(LEAK_HOLD_SECONDS)
        progress("capturing evidence: pool-status endpoint, pg_stat_activity, logs, config")
        run = ScenarioRun("connection-leak", stage.capture(config))
    run.merge_load(result)
    return run


UNDERSIZED_POOL = 2
UNDERSIZED_QUERY_MS = 300  # short, but not instant: 16 clients × 0.3 s far exceed 2 slots
UNDERSIZED_CLIENTS = 16
UNDERSIZED_LOAD_SECONDS = 3.0
UNDERSIZED_CAPTURE_DELAY = 1.0


def pool_undersized(workdir: Path) -> ScenarioRun:
    """Peak demand of short queries exceeds a 2+0 pool; it recovers when the peak ends."""
    config = _saturating("catalog-api", UNDERSIZED_POOL)
    with _stage(workdir, [config]) as stage:
        path = f"/work?ms={UNDERSIZED_QUERY_MS}"
        spec = _spec([path], clients=UNDERSIZED_CLIENTS, seconds=UNDERSIZED_LOAD_SECONDS)
        # The last samples fall after the peak, when the pool has recovered.
        load, evidence = stage.capture_under_load(
            spec, UNDERSIZED_CAPTURE_DELAY, config, samples=SAMPLES + 3
        )
        result = load.wait()
    return ScenarioRun("pool-undersized", evidence, result)


SLOW_POOL = 3
# Sampled a second after the checks' slow-query threshold; the queries run on through capture.
SLOW_CAPTURE_DELAY = SLOW_QUERY_SECONDS + 1.0
SLOW_SLEEP_SECONDS = 2 * SLOW_CAPTURE_DELAY


def slow_queries(workdir: Path) -> ScenarioRun:
    """/slow runs long pg_sleep queries that hold every pooled connection."""
    config = _saturating("reports-api", SLOW_POOL)
    with _stage(workdir, [config]) as stage:
        spec = _spec([f"/slow?s={SLOW_SLEEP_SECONDS:g}"], clients=5, seconds=SLOW_CAPTURE_DELAY + 3)
        load, evidence = stage.capture_under_load(spec, SLOW_CAPTURE_DELAY, config)
        result = stage.stop_and_cancel(load)
    return ScenarioRun("slow-queries", evidence, result)


LOCK_POOL = 3
LOCK_CAPTURE_DELAY = 1.5
LOCK_HOLDER_APP = "nightly-batch"


def lock_contention(workdir: Path) -> ScenarioRun:
    """A batch session holds the hot row's lock, idle in transaction; /locked requests queue."""
    config = _saturating("inventory-api", LOCK_POOL)
    with _stage(workdir, [config]) as stage:
        holder = psycopg.connect(stage.cluster.dsn(user=APP_ROLE, application_name=LOCK_HOLDER_APP))
        try:
            holder.execute(
                "UPDATE inventory SET stock = stock WHERE id = %s", (HOT_ROW_ID,)
            )  # opens the transaction and keeps the row lock
            spec = _spec(["/locked"], clients=5, seconds=LOCK_CAPTURE_DELAY + 4)
            load, evidence = stage.capture_under_load(spec, LOCK_CAPTURE_DELAY, config)
        finally:
            holder.rollback()
            holder.close()
        result = load.stop()
    return ScenarioRun("lock-contention", evidence, result)


IDLE_TX_POOL = 3
EXTERNAL_CALL_SECONDS = 3.0  # a slow payment API; most of each transaction is spent waiting
# All clients start together, so the first transactions end at EXTERNAL_CALL_SECONDS: sample
# either side of that moment to see them rotate, the last sample well into the next ones.
IDLE_TX_CAPTURE_DELAY = 2.5
IDLE_TX_INTERVAL = 1.0


def idle_in_transaction(workdir: Path) -> ScenarioRun:
    """/external calls a slow API inside its transaction: connections idle in transaction."""
    config = _saturating("checkout-api", IDLE_TX_POOL)
    with _stage(workdir, [config]) as stage:
        spec = _spec(
            [f"/external?s={EXTERNAL_CALL_SECONDS:g}"], clients=6, seconds=IDLE_TX_CAPTURE_DELAY + 3
        )
        load, evidence = stage.capture_under_load(
            spec, IDLE_TX_CAPTURE_DELAY, config, interval=IDLE_TX_INTERVAL
        )
        result = load.stop()
    return ScenarioRun("idle-in-transaction", evidence, result)


MAX_CONN_SERVER_SLOTS = 12  # 9 for the app after superuser_reserved_connections = 3
MAX_CONN_WORKERS = 3
MAX_CONN_POOL = 4  # 3 workers × 4 = 12 app connections wanted for 9 slots
MAX_CONN_LOAD_SECONDS = 4.0
MAX_CONN_CAPTURE_DELAY = 1.5


def server_max_connections(workdir: Path) -> ScenarioRun:
    """Three app workers whose pools together want more connections than the server allows."""
    configs = [
        _saturating(f"billing-api-{n}", MAX_CONN_POOL) for n in range(1, MAX_CONN_WORKERS + 1)
    ]
    settings = {"max_connections": str(MAX_CONN_SERVER_SLOTS)}
    with _stage(workdir, configs, settings) as stage:
        spec = _spec(
            ["/work?ms=200"], clients=MAX_CONN_POOL, seconds=MAX_CONN_LOAD_SECONDS, pause=0.05
        )
        loads = [BackgroundLoad(app.url(), spec).start() for app in stage.apps]
        time.sleep(MAX_CONN_CAPTURE_DELAY)
        evidence = stage.capture(configs[0], workers=MAX_CONN_WORKERS)
        results = [load.stop() for load in loads]
    run = ScenarioRun("server-max-connections", evidence)
    for result in results:
        run.merge_load(result)
    return run


STALE_POOL = 3
STALE_AFTER_SECONDS = 1.5


def stale_connections(workdir: Path) -> ScenarioRun:
    """Pooled connections without pre-ping are cut by a server restart; first uses fail."""
    config = _saturating("profile-api", STALE_POOL, pool_pre_ping=False)
    with _stage(workdir, [config]) as stage:
        (app,) = stage.apps
        warm = run_load(app.url(), _spec(["/work?ms=100"], clients=STALE_POOL, seconds=1.0))
        stage.cluster.restart()
        after = run_load(app.url(), _spec(["/quick"], clients=2, seconds=STALE_AFTER_SECONDS))
        evidence = stage.capture(config)
    run = ScenarioRun("stale-connections", evidence)
    run.merge_load(warm)
    run.merge_load(after)
    return run


PROXY_DELAY_SECONDS = 4.0
APP_CONNECT_TIMEOUT = 2  # libpq's minimum; below the proxy's delay
CONNECT_CAPTURE_DELAY = 2.5


def connect_timeouts(workdir: Path) -> ScenarioRun:
    """The app reaches PostgreSQL through a path that takes longer than its connect_timeout."""
    server_port = free_port()
    with slow_proxy(server_port, PROXY_DELAY_SECONDS) as proxy:
        config = LabConfig(
            pool_size=3,
            max_overflow=0,
            pool_timeout=5.0,
            connect_timeout=APP_CONNECT_TIMEOUT,
            application_name="search-api",
            db_port=proxy.port,
        )
        with _stage(workdir, [config], port=server_port) as stage:
            spec = _spec(["/quick"], clients=3, seconds=CONNECT_CAPTURE_DELAY + 2)
            load, evidence = stage.capture_under_load(spec, CONNECT_CAPTURE_DELAY, config)
            result = load.stop()
    return ScenarioRun("connect-timeouts", evidence, result)


LIGHT_LOAD_SECONDS = 3.0


def _light_traffic(
    mode: str, workdir: Path, config: LabConfig, settings: Mapping[str, str]
) -> ScenarioRun:
    with _stage(workdir, [config], settings) as stage:
        (app,) = stage.apps
        paths = ("/quick", "/work?ms=20", "/orders?quantity=1")
        spec = _spec(paths, clients=2, seconds=LIGHT_LOAD_SECONDS, pause=0.05)
        load = BackgroundLoad(app.url(), spec).start()
        evidence = stage.capture(config)
        result = load.stop()
    return ScenarioRun(mode, evidence, result)


def missing_timeouts(workdir: Path) -> ScenarioRun:
    """Healthy today, but nothing bounds a stuck query, transaction or pool wait."""
    config = LabConfig(
        pool_size=HEALTHY_POOL_SIZE,
        max_overflow=10,
        pool_timeout=30.0,
        application_name="accounts-api",
    )
    return _light_traffic("missing-timeouts", workdir, config, {})


def healthy(workdir: Path) -> ScenarioRun:
    """Light traffic on a pool with every timeout set: nothing to report."""
    config = LabConfig(
        pool_size=HEALTHY_POOL_SIZE,
        max_overflow=5,
        pool_timeout=5.0,
        pool_pre_ping=True,
        pool_recycle=1800,
        statement_timeout_ms=30_000,
        connect_timeout=10,
        application_name="accounts-api",
    )
    settings = {
        "statement_timeout": "'30s'",
        "idle_in_transaction_session_timeout": "'60s'",
    }
    return _light_traffic("healthy", workdir, config, settings)


SCENARIOS: dict[str, Callable[[Path], ScenarioRun]] = {
    "connection-leak": connection_leak,
    "pool-undersized": pool_undersized,
    "slow-queries": slow_queries,
    "lock-contention": lock_contention,
    "idle-in-transaction": idle_in_transaction,
    "server-max-connections": server_max_connections,
    "stale-connections": stale_connections,
    "connect-timeouts": connect_timeouts,
    "missing-timeouts": missing_timeouts,
    "healthy": healthy,
}


def run_scenario(mode: str, workdir: Path) -> ScenarioRun:
    """Reproduce one failure mode for real and capture it; everything is torn down after."""
    try:
        scenario = SCENARIOS[mode]
    except KeyError:
        raise ValueError(f"unknown scenario {mode!r}; known: {', '.join(SCENARIOS)}") from None
    return scenario(workdir / mode)


def save_scenario_evidence(run: ScenarioRun, directory: Path) -> Path:
    """Write the run's evidence to `<directory>/<mode>.json` (fixtures for the checks' tests)."""
    path = directory / f"{run.mode}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, evidence_to_json(run.evidence) + "\n")
    path.chmod(FIXTURE_MODE)
    return path
