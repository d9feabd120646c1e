"""A simulated fleet of app instances exporting OpenTelemetry pool metrics via prometheus_client.

One HTTP server on 127.0.0.1 serves every instance at /metrics/<n>, each from its own
registry, the way HikariCP/Npgsql-style exporters write `db.client.connection.*`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from pooldoctor.lab.prometheus import ScrapeTarget


@dataclass
class InstanceState:
    """One instance's pool right now."""

    used: int
    idle: int
    max: int
    pending: int = 0


class FleetInstance:
    """An instance's registry with the semantic-convention pool instruments."""

    def __init__(self, name: str, pool: str, state: InstanceState, old_labels: bool) -> None:
        self.name = name
        self.registry = CollectorRegistry()
        pool_label = "pool_name" if old_labels else "db_client_connection_pool_name"
        state_label = "state" if old_labels else "db_client_connection_state"
        count = Gauge(
            "db_client_connection_count",
            "Connections by state.",
            [pool_label, state_label],
            registry=self.registry,
        )
        maximum = Gauge(
            "db_client_connection_max",
            "Most open connections.",
            [pool_label],
            registry=self.registry,
        )
        pending = Gauge(
            "db_client_connection_pending_requests",
            "Requests waiting for a connection.",
            [pool_label],
            registry=self.registry,
        )
        timeouts = Counter(
            "db_client_connection_timeouts",
            "Checkouts that timed out.",
            [pool_label],
            registry=self.registry,
        )
        count.labels(pool, "used").set(state.used)
        count.labels(pool, "idle").set(state.idle)
        maximum.labels(pool).set(state.max)
        pending.labels(pool).set(state.pending)
        timeouts.labels(pool).inc(state.pending)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class PostgresExporter:
    """postgres_exporter's connection series for one server: sessions by state, the limit."""

    def __init__(self, by_state: dict[str, int], max_connections: int) -> None:
        self.registry = CollectorRegistry()
        activity = Gauge(
            "pg_stat_activity_count",
            "number of connections in this state",
            ["datname", "state"],
            registry=self.registry,
        )
        for state, count in by_state.items():
            activity.labels("app", state).set(count)
        limit = Gauge(
            "pg_settings_max_connections", "max_connections setting", registry=self.registry
        )
        limit.set(max_connections)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Handler(BaseHTTPRequestHandler):
    server: _FleetServer

    def do_GET(self) -> None:
        index = self.path.rsplit("/", 1)[-1]
        instances = self.server.instances
        if index == "postgres" and self.server.postgres is not None:
            body = self.server.postgres.exposition()
        elif not index.isdigit() or int(index) >= len(instances):
            self.send_error(404)
            return
        else:
            body = instances[int(index)].exposition()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class _FleetServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    instances: list[FleetInstance]
    postgres: PostgresExporter | None

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a scraper that gave up (timeout) closed the socket: nothing to report


@dataclass(frozen=True)
class Fleet:
    """The running fleet: its instances and the scrape targets naming them."""

    instances: list[FleetInstance]
    targets: list[ScrapeTarget]


@contextmanager
def serve_fleet(
    states: list[InstanceState], pool: str = "main", postgres: PostgresExporter | None = None
) -> Iterator[Fleet]:
    """Serve one exporter per state; every fifth uses the older `state`/`pool_name` labels.
    With `postgres`, one more target plays postgres_exporter for the shared server."""
    instances = [
        FleetInstance(f"app-{n:04d}:8000", pool, state, old_labels=n % 5 == 4)
        for n, state in enumerate(states)
    ]
    server = _FleetServer(("127.0.0.1", 0), _Handler)
    server.instances = instances
    server.postgres = postgres
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    targets = [
        ScrapeTarget(f"127.0.0.1:{port}", f"/metrics/{n}", instance.name)
        for n, instance in enumerate(instances)
    ]
    if postgres is not None:
        targets.append(ScrapeTarget(f"127.0.0.1:{port}", "/metrics/postgres", "db-1:9187"))
    try:
        yield Fleet(instances, targets)
    finally:
        server.shutdown()
        server.server_close()
