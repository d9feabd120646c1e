"""App-side pool metrics: OpenTelemetry names via prometheus_client, multiprocess, round trip."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

import pooldoctor
from pooldoctor.app.otel import register_otel
from pooldoctor.app.prometheus import register
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.session import capture
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.prometheus import PrometheusUnavailable, ScrapeTarget, TempPrometheus

CHILD_TIMEOUT = 60.0


def _values(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


@pytest.fixture
def tight_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """One connection, no overflow, a short pool_timeout: the second caller waits, then fails."""
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'app.db'}",
        poolclass=sa.QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.3,
        connect_args={"check_same_thread": False},
    )
    pooldoctor.instrument(engine)
    yield engine
    pooldoctor.uninstrument(engine)
    engine.dispose()


def test_collector_in_the_apps_registry_records_wait_use_and_timeouts(
    tight_engine: sa.Engine,
) -> None:
    registry = CollectorRegistry()
    register(registry, engines={'orders"db': tight_engine})
    failed: list[BaseException] = []

    def second_caller() -> None:
        try:
            tight_engine.connect().close()
        except sa.exc.TimeoutError as exc:
            failed.append(exc)

    with tight_engine.connect():
        caller = threading.Thread(target=second_caller)
        caller.start()
        caller.join(10)
    assert len(failed) == 1
    values = _values(generate_latest(registry))
    pool = ("db_client_connection_pool_name", 'orders"db')
    assert values[("db_client_connection_timeouts_total", (pool,))] == 1
    assert values[("db_client_connection_pending_requests", (pool,))] == 0
    assert values[("db_client_connection_max", (pool,))] == 1
    assert values[("db_client_connection_wait_time_seconds_count", (pool,))] == 2
    assert values[("db_client_connection_wait_time_seconds_sum", (pool,))] >= 0.3
    waited_fast = values[("db_client_connection_wait_time_seconds_bucket", (pool, ("le", "0.1")))]
    assert waited_fast == 1  # the first caller got the idle connection at once
    assert values[("db_client_connection_use_time_seconds_count", (pool,))] == 1
    idle = ("db_client_connection_state", "idle")
    assert values[("db_client_connection_count", (pool, idle))] == 1
    assert values[("pooldoctor_pool_timeouts_total", (("engine", 'orders"db'),))] == 1


CHILD = textwrap.dedent(
    """
    import sys
    import sqlalchemy as sa
    import pooldoctor
    from pooldoctor.app.prometheus import register

    engine = sa.create_engine(
        "sqlite:///" + sys.argv[1], poolclass=sa.QueuePool, pool_size=5, max_overflow=0
    )
    pooldoctor.instrument(engine)
    held = [engine.connect() for _ in range(int(sys.argv[2]))]
    held.pop().close()  # one use_time observation
    register(engines={"main": engine})
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def test_multiprocess_mode_sums_every_worker(tmp_path: Path) -> None:
    shared = tmp_path / "multiproc"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "app.db"), str(held)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for held in (3, 4)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(shared))
        values = _values(generate_latest(registry))
    finally:
        for worker in workers:
            worker.communicate("", timeout=CHILD_TIMEOUT)
    pool = ("db_client_connection_pool_name", "main")
    used = ("db_client_connection_state", "used")
    assert values[("db_client_connection_count", (pool, used))] == 2 + 3
    assert values[("db_client_connection_max", (pool,))] == 10
    assert values[("db_client_connection_use_time_seconds_count", (pool,))] == 2
    assert values[("pooldoctor_pool_checked_out", (("engine", "main"),))] == 5


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_app_metrics_scraped_by_prometheus_read_back_by_pooldoctor(pg: TempCluster) -> None:
    engine = sa.create_engine(pg.url(), pool_size=3, max_overflow=1, pool_timeout=5)
    pooldoctor.instrument(engine)
    server = make_server(
        "127.0.0.1", 0, pooldoctor.pool_status_wsgi({"orders": engine}), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    held = [engine.connect() for _ in range(3)]
    try:
        target = ScrapeTarget(f"127.0.0.1:{server.server_port}", "/metrics", "api-1:8000")
        try:
            prometheus = TempPrometheus([target])
        except PrometheusUnavailable as exc:
            pytest.fail(str(exc))
        with prometheus:
            prometheus.wait_for_samples("count_over_time(db_client_connection_max[1m])", 2)
            now = datetime.now(UTC)
            evidence = capture(
                SourceOptions(
                    prometheus=prometheus.url, since=now - timedelta(seconds=20), until=now
                )
            )
    finally:
        for connection in held:
            connection.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
        pooldoctor.uninstrument(engine)
        engine.dispose()
    (instance,) = evidence.pools
    assert instance.url == "api-1:8000 orders"
    latest = instance.samples[-1]
    assert (latest.checked_out, latest.checked_in, latest.capacity) == (3, 0, 4)
    assert latest.size == 3 and latest.max_overflow == 1  # pooldoctor's names merged in
    assert latest.waiting == 0
    assert latest.counters["wait_time_seconds_count"] == 3
    assert latest.counters["pool_timeouts"] == 0


def test_opentelemetry_meter_provider_gets_the_semantic_convention_instruments(
    tight_engine: sa.Engine,
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    register_otel(provider, engines={"orders": tight_engine})
    with tight_engine.connect():
        with pytest.raises(sa.exc.TimeoutError):
            tight_engine.connect()
        data = reader.get_metrics_data()
    assert data is not None
    metrics = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    used = {
        point.attributes["db.client.connection.state"]: point.value
        for point in metrics["db.client.connection.count"]
    }
    assert used == {"used": 1, "idle": 0}
    assert metrics["db.client.connection.max"][0].value == 1
    assert metrics["db.client.connection.timeouts"][0].value == 1
    (wait,) = metrics["db.client.connection.wait_time"]
    assert wait.attributes == {"db.client.connection.pool.name": "orders"}
    assert wait.count == 2 and wait.sum >= 0.3
    provider.shutdown()
