"""PgBouncer's admin console as a source: a real PgBouncer in front of the test cluster."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.pgbouncer import open_pgbouncer
from pooldoctor.collect.session import capture
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence, SourceState, evidence_from_json, evidence_to_json
from pooldoctor.lab.cluster import TempCluster, free_port
from pooldoctor.lab.pgbouncer import PgBouncerUnavailable, TempPgBouncer

JOIN_SECONDS = 30.0  # bound on every client thread; the states below last a few seconds


@pytest.fixture
def bouncer(pg: TempCluster) -> Iterator[Callable[..., TempPgBouncer]]:
    """Factory: a PgBouncer on 127.0.0.1 in front of the session cluster, with chosen settings."""
    with ExitStack() as stack:

        def start(**settings: str) -> TempPgBouncer:
            try:
                return stack.enter_context(TempPgBouncer(pg, settings=settings))
            except PgBouncerUnavailable as exc:
                pytest.fail(str(exc))

        yield start


def _clients(bouncer: TempPgBouncer, count: int, sql: str) -> list[threading.Thread]:
    """`count` client connections through PgBouncer, each running `sql` once, in threads."""

    def run() -> None:
        with psycopg.connect(bouncer.dsn(), autocommit=True) as conn:
            conn.execute(sql.encode())

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads)


def _capture(bouncer: TempPgBouncer, pg: TempCluster, **options: object) -> Evidence:
    return capture(
        SourceOptions(
            pgbouncers=(bouncer.admin_dsn(),),
            dsn=pg.dsn(),
            samples=3,
            interval=0.3,
            timeout=5.0,
            **options,  # type: ignore[arg-type]
        )
    )


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        event.wait(0.05)
    raise AssertionError("state not reached")


def _waiting(bouncer: TempPgBouncer) -> int:
    with psycopg.connect(bouncer.admin_dsn(), autocommit=True) as conn:
        rows = conn.execute(b"SHOW POOLS").fetchall()
    return sum(int(row[3]) for row in rows if row[0] == "postgres")


def test_admin_console_rounds_are_recorded_with_a_stats_user(
    bouncer: Callable[..., TempPgBouncer],
) -> None:
    running = bouncer()
    probe = open_pgbouncer(running.admin_dsn(), timeout=5.0)
    probe.sample()
    probe.sample()
    evidence = probe.finish()
    assert evidence.connect_failure is None and evidence.errors == ()
    assert evidence.version and "PgBouncer" in evidence.version
    assert evidence.config["pool_mode"] == "transaction"
    assert evidence.config["default_pool_size"] == "5"
    assert len(evidence.samples) == 2
    sample = evidence.samples[-1]
    assert any(p.database == "pgbouncer" for p in sample.pools)
    assert sample.clients_total >= 1 and sample.stats
    assert probe.status().status is SourceState.OK


def test_unreachable_pgbouncer_is_a_failed_source_not_a_crash(pg: TempCluster) -> None:
    dsn = f"host=127.0.0.1 port={free_port()} dbname=pgbouncer user=x password=hunter2"
    evidence = capture(SourceOptions(pgbouncers=(dsn,), samples=1, interval=0, timeout=1.0))
    (status,) = evidence.sources
    assert status.status is SourceState.ERROR and status.kind == "pgbouncer"
    assert "hunter2" not in evidence_to_json(evidence)


def test_saturation_names_the_pool_with_show_pools_numbers(
    bouncer: Callable[..., TempPgBouncer], pg: TempCluster
) -> None:
    running = bouncer(default_pool_size="2", reserve_pool_size="0")
    # The state holds until the test lets go, however slow the machine: two clients block on
    # a lock the test holds (both server connections busy), two more queue in PgBouncer.
    with psycopg.connect(pg.dsn(), autocommit=True) as holder:
        holder.execute(b"SELECT pg_advisory_lock(4242)")
        clients = _clients(running, 4, "SELECT pg_advisory_xact_lock(4242)")
        try:
            _wait_for(lambda: _waiting(running) >= 2)
            evidence = _capture(running, pg)
        finally:
            holder.execute(b"SELECT pg_advisory_unlock(4242)")
            _join(clients)
    diagnosis = diagnose(evidence)
    top = diagnosis.findings[0]
    assert top.check == "pgbouncer-saturation", [f.id for f in diagnosis.findings]
    assert top.evidence["database"] == "postgres" and top.evidence["user"] == "postgres"
    show_pools = top.evidence["show_pools"]
    assert min(show_pools["cl_waiting"]) >= 1
    assert show_pools["sv_active"][-1] == 2
    assert top.evidence["effective_pool_size"]["effective"] == 2
    assert "default_pool_size 2 = 2" in top.summary
    assert "1 PgBouncer instance(s) x 2 = 2" in top.summary
    assert any("40 max_connections" in step for step in top.remediation)


def test_session_mode_pinning_by_idle_clients(
    bouncer: Callable[..., TempPgBouncer], pg: TempCluster
) -> None:
    running = bouncer(pool_mode="session", default_pool_size="2", reserve_pool_size="0")
    idle = [psycopg.connect(running.dsn(), autocommit=True) for _ in range(2)]
    try:
        for conn in idle:
            conn.execute(b"SELECT 1")  # pairs the client with a server for its whole session
        waiting = _clients(running, 1, "SELECT 1")
        _wait_for(lambda: _waiting(running) >= 1)
        evidence = _capture(running, pg)
    finally:
        for conn in idle:
            conn.close()
    _join(waiting)
    diagnosis = diagnose(evidence)
    top = diagnosis.findings[0]
    assert top.check == "pgbouncer-session-pinning", [f.id for f in diagnosis.findings]
    assert top.evidence["idle_linked_clients"] == 2
    assert top.evidence["show_pools"]["sv_active"][-1] == 2
    assert top.evidence["show_pools"]["cl_waiting"][-1] == 1
    assert "pool_mode = session" in top.summary


def test_prepared_statements_under_transaction_pooling(
    bouncer: Callable[..., TempPgBouncer], pg: TempCluster, tmp_path: Path
) -> None:
    running = bouncer(default_pool_size="1", reserve_pool_size="0")
    log_path = tmp_path / "app.log"
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("tests.app")
    logger.addHandler(handler)
    errors = 0
    try:
        first = psycopg.connect(running.dsn(), autocommit=True, prepare_threshold=0)
        second = psycopg.connect(running.dsn(), autocommit=True, prepare_threshold=0)
        with first, second:
            for round_number in range(3):
                for conn in (first, second):
                    try:
                        conn.execute("SELECT %s::int + 1", (round_number,))
                    except psycopg.Error as exc:
                        errors += 1
                        logger.error("query failed: %s: %s", type(exc).__name__, exc)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert errors >= 1  # the real failure: two clients' statements on one server connection
    evidence = _capture(running, pg, logs=(str(log_path),))
    diagnosis = diagnose(evidence)
    top = diagnosis.findings[0]
    assert top.check == "prepared-statements-pgbouncer", [f.id for f in diagnosis.findings]
    (facts,) = top.evidence["pgbouncers"]
    assert facts["pool_modes"] == ["transaction"]
    assert facts["version"].startswith("PgBouncer")
    assert "1.21" in top.summary or "max_prepared_statements" in top.summary
    assert any("max_prepared_statements" in step for step in top.remediation)


def test_pgbouncer_evidence_replays_to_the_same_findings(
    bouncer: Callable[..., TempPgBouncer], pg: TempCluster
) -> None:
    running = bouncer(default_pool_size="1", reserve_pool_size="0")
    clients = _clients(running, 2, "SELECT pg_sleep(1)")
    try:
        _wait_for(lambda: _waiting(running) >= 1)
        evidence = _capture(running, pg)
    finally:
        _join(clients)
    replayed = evidence_from_json(evidence_to_json(evidence))
    assert replayed == evidence
    assert [f.id for f in diagnose(replayed).findings] == [
        f.id for f in diagnose(evidence).findings
    ]


def test_a_hung_pgbouncer_cannot_hang_a_round(bouncer: Callable[..., TempPgBouncer]) -> None:
    # SHOW has no server-side timeout on the admin console: a stopped PgBouncer still has its
    # socket accepted by the kernel, so only a client-side cut on the socket ends the wait.
    running = bouncer()
    assert running.process is not None
    probe = open_pgbouncer(running.admin_dsn(), timeout=0.5)
    assert probe.connect_failure is None
    round_over = threading.Event()
    sampler = threading.Thread(target=lambda: (probe.sample(), round_over.set()), daemon=True)
    os.kill(running.process.pid, signal.SIGSTOP)
    try:
        sampler.start()
        finished = round_over.wait(JOIN_SECONDS)
    finally:
        os.kill(running.process.pid, signal.SIGCONT)
    assert finished, "a SHOW against a stopped PgBouncer was not cut off"
    evidence = probe.finish()
    assert evidence.samples == ()
    assert evidence.errors[-1].startswith("SHOW POOLS: no answer within 0.5s; connection dropped")
    assert probe.round_outcome() == "error: connection lost"
    assert probe.status().status is SourceState.ERROR
