"""Per-check evidence cases (healthy and failing); `generate.py` writes them as JSON fixtures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pooldoctor.collect.logs.records import CANCELLED, GC_CLEANUP
from pooldoctor.evidence import (
    AppLogFacts,
    Backend,
    Evidence,
    LogEvent,
    LogMoment,
    PgBouncerConnection,
    PgBouncerDatabase,
    PgBouncerEvidence,
    PgBouncerPool,
    PgBouncerSample,
)
from tests.evidence_builders import (
    HEALTHY_SETTINGS,
    SAMPLE_TIMES,
    active,
    activity,
    ago,
    config,
    events,
    evidence,
    holders,
    idle,
    idle_in_tx,
    log_file,
    pool,
    pool_sample,
    postgres,
)

QUEUEPOOL_LINE = (
    "sqlalchemy.exc.TimeoutError: QueuePool limit of size 20 overflow 10 reached, connection "
    "timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)"
)
GC_LINE = (
    "The garbage collector is trying to clean up non-checked-in connection <connection object "
    "at 0x7f3a>, which will be terminated. Please ensure that SQLAlchemy pooled connections are "
    "returned to the pool explicitly"
)


@dataclass(frozen=True)
class Expected:
    """What the check must report for a failing case (None for a healthy case)."""

    check: str
    runbook: str | None = None
    severity: str | None = None
    top: bool = False  # the diagnosis must rank this runbook first


def _pooled_idle(at_index: int, count: int = 6, first_pid: int = 100) -> list[Backend]:
    """Checked-in pool connections: idle for minutes, untouched."""
    return [idle(first_pid + i, ago(300 + 17 * i)) for i in range(count)]


def healthy() -> Evidence:
    """A quiet, well-configured service: pool 3/30, short queries, timeouts set."""
    samples = []
    for index, at in enumerate(SAMPLE_TIMES):
        samples.append(
            activity(
                at,
                [
                    *_pooled_idle(index),
                    active(200, at, 0.02 + index * 0.01, query="SELECT * FROM orders WHERE id=$1"),
                    active(201 + index, at, 0.005),
                ],
            )
        )
    return evidence(
        pools=[pool(*(pool_sample(at, checked_out=3) for at in SAMPLE_TIMES))],
        pg=postgres(*samples),
        cfg=config(),
    )


def _with(base: Evidence, **changes: Any) -> Evidence:
    return replace(base, **changes)


# --- failing cases --------------------------------------------------------------------------


def connection_leak() -> Evidence:
    leaked_since = [ago(877 - 15 * i) for i in range(18)]
    samples = []
    for index, at in enumerate(SAMPLE_TIMES):
        leaked = [
            idle_in_tx(4242 + i, since, query="SELECT * FROM orders WHERE user_id = $1")
            for i, since in enumerate(leaked_since)
        ]
        busy = [active(5000 + 20 * index + i, at, 0.05 * (i + 1)) for i in range(12)]
        samples.append(activity(at, leaked + busy))
    holder_list = holders("app/api/orders.py:42 in create_order", [877 - 15 * i for i in range(18)])
    holder_list += holders("app/api/items.py:17 in list_items", [0.1] * 12)
    return evidence(
        pools=[pool(*(pool_sample(at, 30, holders=holder_list) for at in SAMPLE_TIMES))],
        pg=postgres(
            *samples, settings={**HEALTHY_SETTINGS, "idle_in_transaction_session_timeout": "0"}
        ),
        logs=[
            log_file(
                events(
                    LogEvent.POOL_TIMEOUT, 212, last=ago(20), minutes=10, examples=[QUEUEPOOL_LINE]
                ),
                events(LogEvent.GC_CLEANUP, 5, last=ago(120), minutes=5, examples=[GC_LINE]),
            )
        ],
        cfg=config(),
    )


def connection_leak_finished_threads() -> Evidence:
    """Seconds into a leak: too young for the age rule, but the request threads have finished."""
    leaked_since = [ago(35), ago(31.5), ago(27.25), ago(24)]  # before the first sample (ago(20))
    samples = [
        activity(
            at,
            [
                *(
                    idle_in_tx(4300 + i, since, query="INSERT INTO orders VALUES ($1, $2)")
                    for i, since in enumerate(leaked_since)
                ),
                active(5100 + index, at, 0.05),
            ],
        )
        for index, at in enumerate(SAMPLE_TIMES)
    ]
    readings = []
    for at in SAMPLE_TIMES:
        ages = [(at - since).total_seconds() for since in leaked_since]
        held = holders(
            "app/api/orders.py:42 in create_order",
            ages,
            thread="Thread-7 (process_request_thread)",
            thread_alive=False,
        )
        held += holders("app/api/items.py:17 in list_items", [0.2], "Thread-9", True)
        readings.append(pool_sample(at, 5, size=5, max_overflow=0, holders=held))
    return evidence(
        pools=[pool(*readings)],
        pg=postgres(*samples),
        logs=[
            log_file(
                events(LogEvent.POOL_TIMEOUT, 9, last=ago(2), minutes=1, examples=[QUEUEPOOL_LINE])
            )
        ],
        cfg=config(pool_size=5, max_overflow=0),
    )


def pool_undersized() -> Evidence:
    counts = (24, 30, 27)
    samples = []
    for index, at in enumerate(SAMPLE_TIMES):
        backends = [
            active(6000 + 40 * index + i, at, 0.01 + 0.015 * i) for i in range(counts[index] - 2)
        ]
        backends += [idle(6900 + i, ago(1.5 + i, at)) for i in range(2)]
        samples.append(activity(at, backends))
    pool_samples = [
        pool_sample(
            at,
            counts[i],
            counters={
                "checkouts_total": 100000 + 1500.0 * i,
                "hold_seconds_sum": 18000 + 270.0 * i,
                "hold_seconds_count": 100000 + 1500.0 * i,
            },
        )
        for i, at in enumerate(SAMPLE_TIMES)
    ]
    return evidence(
        pools=[pool(*pool_samples)],
        pg=postgres(*samples),
        logs=[
            log_file(
                events(
                    LogEvent.POOL_TIMEOUT, 40, last=ago(30), minutes=5, examples=[QUEUEPOOL_LINE]
                )
            )
        ],
        cfg=config(workers=2),
    )


def slow_queries() -> Evidence:
    starts = [ago(40 + 4 * i) for i in range(22)]
    samples = []
    for index, at in enumerate(SAMPLE_TIMES):
        slow = [
            _at_start(
                active(
                    7000 + i,
                    at,
                    (at - start).total_seconds(),
                    query="SELECT count(*) FROM events WHERE payload->>'k' = $1",
                    wait_event_type="IO" if i % 2 else None,
                ),
                start,
            )
            for i, start in enumerate(starts)
        ]
        fast = [active(7100 + 10 * index + i, at, 0.02) for i in range(8)]
        samples.append(activity(at, slow + fast))
    return evidence(
        pools=[pool(*(pool_sample(at, 30) for at in SAMPLE_TIMES))],
        pg=postgres(*samples, settings={**HEALTHY_SETTINGS, "statement_timeout": "0"}),
        logs=[
            log_file(
                events(
                    LogEvent.POOL_TIMEOUT, 60, last=ago(15), minutes=4, examples=[QUEUEPOOL_LINE]
                ),
                events(LogEvent.STATEMENT_TIMEOUT, 15, last=ago(40), minutes=3),
            )
        ],
        cfg=config(statement_timeout=None),
    )


def _at_start(backend: Backend, start: datetime) -> Backend:
    return replace(backend, xact_start=start, query_start=start, state_change=start)


def lock_contention(blocker_app: str = "psql", blocker_user: str = "admin") -> Evidence:
    blocker_since = ago(25 * 60)
    samples = []
    for at in SAMPLE_TIMES:
        blocker = idle_in_tx(
            777,
            blocker_since,
            app=blocker_app,
            user=blocker_user,
            query="ALTER TABLE orders ADD COLUMN note text",
        )
        waiters = [
            _at_start(
                active(
                    8000 + i,
                    at,
                    0,
                    query="UPDATE orders SET status=$1 WHERE id=$2",
                    wait_event_type="Lock",
                    wait_event="relation",
                    blocking=[777],
                ),
                ago(90 - 3 * i),
            )
            for i in range(15)
        ]
        samples.append(activity(at, [blocker, *waiters, *_pooled_idle(0, 3)]))
    return evidence(
        pools=[pool(*(pool_sample(at, 30) for at in SAMPLE_TIMES))],
        pg=postgres(*samples),
        logs=[
            log_file(
                events(LogEvent.LOCK_WAIT, 30, last=ago(10), minutes=2),
                events(
                    LogEvent.POOL_TIMEOUT, 25, last=ago(5), minutes=2, examples=[QUEUEPOOL_LINE]
                ),
            )
        ],
        cfg=config(),
    )


def idle_in_transaction() -> Evidence:
    samples = []
    for index, at in enumerate(SAMPLE_TIMES):
        waiting = [
            idle_in_tx(
                9000 + 30 * index + i,
                ago(2 + (i % 8), at),
                query="SELECT * FROM payments WHERE id = $1 FOR UPDATE",
            )
            for i in range(20)
        ]
        busy = [active(9500 + 10 * index + i, at, 0.03) for i in range(5)]
        samples.append(activity(at, waiting + busy))
    holder_list = holders("app/payments.py:88 in charge", [2 + (i % 8) for i in range(20)])
    counts = (30, 28, 30)
    return evidence(
        pools=[
            pool(
                *(
                    pool_sample(at, counts[i], holders=holder_list)
                    for i, at in enumerate(SAMPLE_TIMES)
                )
            )
        ],
        pg=postgres(
            *samples, settings={**HEALTHY_SETTINGS, "idle_in_transaction_session_timeout": "0"}
        ),
        logs=[
            log_file(
                events(
                    LogEvent.POOL_TIMEOUT, 33, last=ago(12), minutes=5, examples=[QUEUEPOOL_LINE]
                )
            )
        ],
        cfg=config(),
    )


def server_max_connections() -> Evidence:
    samples = []
    for at in SAMPLE_TIMES:
        api = [idle(10000 + i, ago(60 + i)) for i in range(60)]
        worker = [idle(11000 + i, ago(30 + i), app="worker", user="worker") for i in range(35)]
        samples.append(activity(at, api + worker))
    return evidence(
        pg=postgres(*samples),
        logs=[
            log_file(
                events(
                    LogEvent.TOO_MANY_CLIENTS,
                    50,
                    last=ago(8),
                    minutes=5,
                    examples=["FATAL:  sorry, too many clients already"],
                )
            )
        ],
        cfg=config(workers=16),
    )


def stale_connections() -> Evidence:
    base = healthy()
    return _with(
        base,
        logs=(
            log_file(
                events(
                    LogEvent.SERVER_CLOSED,
                    12,
                    last=ago(45),
                    minutes=3,
                    examples=[
                        "psycopg2.OperationalError: server closed the connection unexpectedly"
                    ],
                ),
            ),
        ),
        config=config(pool_pre_ping=False),
    )


def connect_timeouts() -> Evidence:
    base = healthy()
    assert base.postgres is not None
    return _with(
        base,
        postgres=replace(base.postgres, connect_seconds=6.5),
        logs=(
            log_file(
                events(
                    LogEvent.CONNECT_TIMEOUT,
                    8,
                    last=ago(30),
                    minutes=4,
                    examples=["psycopg.OperationalError: connection timeout expired"],
                )
            ),
        ),
        config=config(connect_timeout=3.0),
    )


def missing_timeouts() -> Evidence:
    settings = {
        **HEALTHY_SETTINGS,
        "statement_timeout": "0",
        "idle_in_transaction_session_timeout": "0",
    }
    return evidence(
        pools=[pool(*(pool_sample(at, 30) for at in SAMPLE_TIMES))],
        pg=postgres(settings=settings),
        logs=[
            log_file(
                events(
                    LogEvent.POOL_TIMEOUT, 10, last=ago(30), minutes=2, examples=[QUEUEPOOL_LINE]
                )
            )
        ],
        cfg=config(statement_timeout=None, pool_timeout=None),
    )


def pgbouncer_saturation() -> Evidence:
    return _with(
        healthy(),
        logs=(
            log_file(
                events(
                    LogEvent.PGBOUNCER,
                    30,
                    last=ago(20),
                    minutes=5,
                    examples=["ERROR: query_wait_timeout"],
                ),
                path="/var/log/pgbouncer/pgbouncer.log",
            ),
        ),
    )


def _bouncer(
    mode: str,
    pool_size: int,
    rows: list[tuple[int, int, int, float]],  # (cl_active, cl_waiting, sv_active, maxwait)
    clients: tuple[PgBouncerConnection, ...] = (),
) -> PgBouncerEvidence:
    samples = tuple(
        PgBouncerSample(
            at=at,
            pools=(
                PgBouncerPool(
                    "orders",
                    "api",
                    cl_active=cl_active,
                    cl_waiting=cl_waiting,
                    sv_active=sv_active,
                    sv_idle=max(0, pool_size - sv_active),
                    maxwait_seconds=maxwait,
                    pool_mode=mode,
                ),
            ),
            databases=(PgBouncerDatabase("orders", "10.0.0.5", 5432, "orders", None, pool_size),),
            clients=clients,
            clients_total=len(clients) or cl_active + cl_waiting,
            servers_total=sv_active,
        )
        for at, (cl_active, cl_waiting, sv_active, maxwait) in zip(SAMPLE_TIMES, rows, strict=False)
    )
    return PgBouncerEvidence(
        target="host=10.0.0.9 port=6432 user=stats dbname=pgbouncer",
        version="PgBouncer 1.18.0",
        config={
            "pool_mode": mode,
            "default_pool_size": str(pool_size),
            "reserve_pool_size": "0",
            "max_db_connections": "0",
            "max_user_connections": "0",
            "query_wait_timeout": "120",
        },
        samples=samples,
    )


def pgbouncer_admin_saturation() -> Evidence:
    rows = [(10, 4, 10, 1.5), (10, 9, 10, 4.0), (10, 14, 10, 7.5)]
    return _with(healthy(), pgbouncers=(_bouncer("transaction", 10, rows),))


def _linked(port: int, request_time: str) -> PgBouncerConnection:
    return PgBouncerConnection(
        "api",
        "orders",
        "active",
        addr="10.0.1.7",
        port=port,
        connect_time="2026-11-21 09:00:00 UTC",
        request_time=request_time,
        ptr=f"0x{port:x}",
        link=f"0x{port + 1:x}",
        application_name="api",
    )


def pgbouncer_session_pinning() -> Evidence:
    idle = tuple(_linked(40000 + n, "2026-11-21 09:01:00 UTC") for n in range(2))
    rows = [(2, 3, 2, 2.0), (2, 3, 2, 4.0), (2, 3, 2, 6.0)]
    return _with(healthy(), pgbouncers=(_bouncer("session", 2, rows, idle),))


def healthy_pgbouncer() -> Evidence:
    rows = [(3, 0, 2, 0.0), (4, 0, 3, 0.0), (2, 0, 2, 0.0)]
    return _with(healthy(), pgbouncers=(_bouncer("transaction", 10, rows),))


def prepared_statements() -> Evidence:
    line = (
        "asyncpg.exceptions.DuplicatePreparedStatementError: prepared statement "
        '"__asyncpg_stmt_5__" already exists'
    )
    return _with(
        healthy(),
        logs=(
            log_file(
                events(LogEvent.PREPARED_STATEMENT, 20, last=ago(10), minutes=5, examples=[line])
            ),
        ),
    )


def fork_shared_engine() -> Evidence:
    line = "psycopg2.OperationalError: SSL error: decryption failed or bad record mac"
    return _with(
        healthy(),
        logs=(log_file(events(LogEvent.SSL_ERROR, 6, last=ago(50), minutes=2, examples=[line])),),
    )


def failover_read_only() -> Evidence:
    base = healthy()
    assert base.postgres is not None
    line = "ERROR:  cannot execute UPDATE in a read-only transaction"
    return _with(
        base,
        postgres=replace(base.postgres, in_recovery=True),
        logs=(log_file(events(LogEvent.READ_ONLY, 40, last=ago(5), minutes=8, examples=[line])),),
    )


def streaming_holds_session() -> Evidence:
    holder_list = holders(
        "app/export.py:31 in stream_rows (StreamingResponse)", [20 + 15 * i for i in range(12)]
    )
    holder_list += holders("app/api/items.py:17 in list_items", [0.05, 0.1])
    return evidence(
        pools=[pool(*(pool_sample(at, 14, holders=holder_list) for at in SAMPLE_TIMES))],
        cfg=config(),
    )


def threadpool_deadlock() -> Evidence:
    frozen = ago(120)
    samples = [
        activity(at, [idle(12000 + i, frozen + timedelta(seconds=0.2 * i)) for i in range(15)])
        for at in SAMPLE_TIMES
    ]
    holder_list = holders(
        "app/deps.py:12 in get_db", [120 - 0.2 * i for i in range(15)], thread="AnyIO worker thread"
    )
    return evidence(
        pools=[
            pool(
                *(
                    pool_sample(
                        at,
                        15,
                        size=5,
                        max_overflow=10,
                        holders=holder_list,
                        counters={"checkouts_total": 5000.0},
                    )
                    for at in SAMPLE_TIMES
                )
            )
        ],
        pg=postgres(*samples),
        logs=[
            log_file(
                events(LogEvent.POOL_TIMEOUT, 80, last=ago(3), minutes=2, examples=[QUEUEPOOL_LINE])
            )
        ],
        cfg=config(pool_size=5, max_overflow=10),
    )


def async_cancellation_leak() -> Evidence:
    since = [ago(300 + 20 * i) for i in range(10)]
    samples = [
        activity(
            at,
            [idle_in_tx(13000 + i, s) for i, s in enumerate(since)]
            + [active(13500 + i, at, 0.02) for i in range(5)],
        )
        for at in SAMPLE_TIMES
    ]
    gc_async = (
        "The garbage collector is trying to clean up non-checked-in connection "
        "<AdaptedConnection <asyncpg.connection.Connection object at 0x7f>>, which will "
        "be terminated."
    )
    # Each GC cleanup follows a request task cancelled by its client's disconnect.
    cancelled_at = [ago(40 + 25 * i) for i in range(9)]
    moments = [
        moment
        for at in cancelled_at
        for moment in (
            LogMoment(at, CANCELLED, "client disconnected; cancelling GET /search"),
            LogMoment(at + timedelta(milliseconds=120), GC_CLEANUP, gc_async),
        )
    ]
    cancelled_log = replace(
        log_file(
            events(LogEvent.GC_CLEANUP, 9, last=ago(40), minutes=5, examples=[gc_async]),
            events(LogEvent.POOL_TIMEOUT, 14, last=ago(10), minutes=3, examples=[QUEUEPOOL_LINE]),
        ),
        app=AppLogFacts(moments=tuple(sorted(moments, key=lambda m: m.at))),
    )
    return evidence(
        pools=[pool(*(pool_sample(at, 15, size=10, max_overflow=5) for at in SAMPLE_TIMES))],
        pg=postgres(*samples),
        logs=[cancelled_log],
        cfg=config(pool_size=10, max_overflow=5),
    )


def pool_exhausted() -> Evidence:
    return evidence(
        pools=[pool(*(pool_sample(at, 30) for at in SAMPLE_TIMES))],
        logs=[
            log_file(
                events(
                    LogEvent.POOL_TIMEOUT, 90, last=ago(10), minutes=5, examples=[QUEUEPOOL_LINE]
                )
            )
        ],
    )


# --- healthy variants that look a little like each failure ------------------------------------


def healthy_short_waits() -> Evidence:
    """Brief lock waits and idle-in-transaction gaps are ordinary: nothing to report."""
    base = healthy()
    assert base.postgres is not None
    samples = [
        replace(
            s,
            backends=(
                *s.backends,
                active(300, s.at, 0.2, wait_event_type="Lock", blocking=[301]),
                idle_in_tx(301, ago(0.3, s.at)),
            ),
        )
        for s in base.postgres.samples
    ]
    return _with(base, postgres=replace(base.postgres, samples=tuple(samples)))


def healthy_busy_pool() -> Evidence:
    """A pool at 60%, with a single slow report query: busy, not exhausted."""
    base = healthy()
    assert base.postgres is not None
    samples = [
        replace(s, backends=(*s.backends, active(400, s.at, 8.0, query="SELECT report()")))
        for s in base.postgres.samples
    ]
    return _with(
        base,
        pools=(pool(*(pool_sample(at, 18) for at in SAMPLE_TIMES)),),
        postgres=replace(base.postgres, samples=tuple(samples)),
    )


def healthy_live_holders() -> Evidence:
    """Requests in flight (and an async task) hold connections briefly: their threads are alive."""
    base = healthy()
    in_flight = holders("app/api/items.py:17 in list_items", [0.02, 0.8, 2.5], "Thread-4", True)
    in_flight += holders("app/api/feed.py:30 in poll_feed", [4.0], "MainThread", True)
    in_flight += holders("app/api/items.py:17 in list_items", [0.4], "Thread-5", False)
    return _with(
        base, pools=(pool(*(pool_sample(at, 5, holders=in_flight) for at in SAMPLE_TIMES)),)
    )


CaseBuilder = Callable[[], Evidence]
FAILING: dict[str, tuple[CaseBuilder, Expected]] = {
    "connection-leak": (
        connection_leak,
        Expected("connection-leak", "connection-leak", "critical", True),
    ),
    "connection-leak-finished-threads": (
        connection_leak_finished_threads,
        Expected("connection-leak", "connection-leak", "critical", True),
    ),
    "pool-undersized": (
        pool_undersized,
        Expected("pool-undersized", "pool-undersized", "warning", True),
    ),
    "slow-queries": (slow_queries, Expected("slow-queries", "slow-queries", "critical", True)),
    "lock-contention": (
        lock_contention,
        Expected("lock-contention", "lock-contention", "critical", True),
    ),
    "idle-in-transaction": (
        idle_in_transaction,
        Expected("idle-in-transaction", "idle-in-transaction", "critical", True),
    ),
    "server-max-connections": (
        server_max_connections,
        Expected("server-max-connections", "server-max-connections", "critical", True),
    ),
    "stale-connections": (
        stale_connections,
        Expected("stale-connections", "stale-connections", "warning", True),
    ),
    "connect-timeouts": (
        connect_timeouts,
        Expected("connect-timeouts", "connect-timeouts", "warning", True),
    ),
    "missing-timeouts": (
        missing_timeouts,
        Expected("missing-timeouts", "missing-timeouts", "warning"),
    ),
    "pgbouncer-saturation": (
        pgbouncer_saturation,
        Expected("pgbouncer-saturation", "pgbouncer-saturation", "critical", True),
    ),
    "pgbouncer-admin-saturation": (
        pgbouncer_admin_saturation,
        Expected("pgbouncer-saturation", "pgbouncer-saturation", "critical", True),
    ),
    "pgbouncer-session-pinning": (
        pgbouncer_session_pinning,
        Expected("pgbouncer-session-pinning", "pgbouncer-saturation", "critical", True),
    ),
    "prepared-statements-pgbouncer": (
        prepared_statements,
        Expected("prepared-statements-pgbouncer", "prepared-statements-pgbouncer", "warning", True),
    ),
    "fork-shared-engine": (
        fork_shared_engine,
        Expected("fork-shared-engine", "fork-shared-engine", "warning", True),
    ),
    "failover-read-only": (
        failover_read_only,
        Expected("failover-read-only", "failover-read-only", "critical", True),
    ),
    "streaming-holds-session": (
        streaming_holds_session,
        Expected("streaming-holds-session", "streaming-holds-session", "warning", True),
    ),
    "threadpool-deadlock": (
        threadpool_deadlock,
        Expected("threadpool-deadlock", "threadpool-deadlock", "critical", True),
    ),
    "async-cancellation-leak": (
        async_cancellation_leak,
        Expected("async-cancellation-leak", "async-cancellation-leak", "critical", True),
    ),
    "pool-exhausted": (
        pool_exhausted,
        Expected("pool-exhausted", "pool-undersized", "critical", True),
    ),
}

HEALTHY: dict[str, CaseBuilder] = {
    "healthy": healthy,
    "healthy-short-waits": healthy_short_waits,
    "healthy-busy-pool": healthy_busy_pool,
    "healthy-live-holders": healthy_live_holders,
    "healthy-pgbouncer": healthy_pgbouncer,
}
