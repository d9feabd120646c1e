"""A real PostgreSQL server log: provoke connection-limit, timeout and lock events; classify."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC

import psycopg
import pytest
from psycopg import errors

from pooldoctor.collect.logs import collect_logs
from pooldoctor.evidence import LogEvent as E
from pooldoctor.evidence import LogFileEvidence
from pooldoctor.lab.cluster import TempCluster
from tests.backends import wait_for_backends

APP_SLOTS = 5  # max_connections 6 minus 1 reserved for superusers
LOG_WAIT_SECONDS = 10.0


def _fill_connections(cluster: TempCluster) -> None:
    """Take every app slot, then the reserved one: each next attempt is refused and logged."""
    wait_for_backends(cluster)  # closed backends hold their slot until they exit
    with ExitStack() as held:
        app = [
            held.enter_context(psycopg.connect(cluster.dsn(user="app"), autocommit=True))
            for _ in range(APP_SLOTS)
        ]
        with pytest.raises(psycopg.OperationalError, match="reserved"):
            psycopg.connect(cluster.dsn(user="app"))
        wait_for_backends(cluster, [conn.info.backend_pid for conn in app])
        held.enter_context(psycopg.connect(cluster.dsn(), autocommit=True))
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            psycopg.connect(cluster.dsn(user="app"))


def _statement_timeout(cluster: TempCluster) -> None:
    with psycopg.connect(cluster.dsn(user="app"), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '100ms'")
        with pytest.raises(errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")


def _wait_until_waiting(watcher: psycopg.Connection[tuple[object, ...]], pid: int) -> None:
    """Bounded wait until backend `pid` waits for a lock (not a guess at how fast it starts)."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    query = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)"
    while not (row := watcher.execute(query, [pid]).fetchone()) or not row[0]:
        if time.monotonic() > deadline:
            pytest.fail(f"backend {pid} never waited for the row lock")
        time.sleep(0.02)


def _lock_timeout_and_deadlock(cluster: TempCluster) -> None:
    first = psycopg.connect(cluster.dsn(user="app"))
    second = psycopg.connect(cluster.dsn(user="app"))
    try:
        first.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
        second.execute("SET lock_timeout = '300ms'")  # longer than deadlock_timeout: a lock wait
        with pytest.raises(errors.LockNotAvailable):
            second.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        second.rollback()
        second.execute("SET lock_timeout = '5s'")
        second.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 2")
        outcome: list[BaseException | None] = []

        def first_takes_row_two() -> None:
            try:
                first.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2")
                outcome.append(None)
            except psycopg.Error as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=first_takes_row_two)
        waiter.start()
        _wait_until_waiting(second, first.info.backend_pid)
        try:
            second.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
            outcome.append(None)
        except psycopg.Error as exc:
            outcome.append(exc)
        second.rollback()
        waiter.join(timeout=10)
        assert not waiter.is_alive()
        assert any(isinstance(exc, errors.DeadlockDetected) for exc in outcome)
    finally:
        first.close()
        second.close()


def _collect_when(
    cluster: TempCluster, ready: Callable[[LogFileEvidence], bool]
) -> LogFileEvidence:
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        (log,) = collect_logs([str(cluster.logfile)], log_tz=UTC, since=None, until=None)
        if ready(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.2)


def test_real_server_log(make_cluster: Callable[..., TempCluster]) -> None:
    cluster = make_cluster(max_connections="6", superuser_reserved_connections="1")
    cluster.execute("CREATE ROLE app LOGIN")
    cluster.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
    cluster.execute("INSERT INTO accounts VALUES (1, 100), (2, 100)")
    cluster.execute("GRANT SELECT, UPDATE ON accounts TO app")

    _statement_timeout(cluster)
    _lock_timeout_and_deadlock(cluster)
    _fill_connections(cluster)

    expected = {
        E.TOO_MANY_CLIENTS: 1,
        E.RESERVED_SLOTS: 1,
        E.STATEMENT_TIMEOUT: 1,
        E.LOCK_TIMEOUT: 1,
        E.DEADLOCK: 1,
    }

    def counts(log: LogFileEvidence) -> dict[E, int]:
        return {summary.event: summary.count for summary in log.events}

    log = _collect_when(cluster, lambda log: all(counts(log).get(k) for k in expected))
    found = counts(log)
    assert {kind: found.get(kind) for kind in expected} == expected
    assert found.get(E.LOCK_WAIT, 0) >= 1  # log_lock_waits with deadlock_timeout 200ms
    assert found[E.SERVER_START] == 1
    assert log.flavor == "postgresql"
    continuations = cluster.logfile.read_bytes().count(b"\n\t")  # deadlock DETAIL lines
    assert log.timestamped_lines == log.lines - continuations
    assert log.problems == ()
    deadlock = next(s for s in log.events if s.event is E.DEADLOCK)
    assert deadlock.first is not None and deadlock.first.tzinfo == UTC
    assert "ERROR:  deadlock detected" in deadlock.examples[0]
