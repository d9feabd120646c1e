"""The explicit list of checks: name, the runbooks it can name, a one-line summary, the function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pooldoctor.checks import (
    async_cancellation,
    connect_timeouts,
    connection_leak,
    failover,
    fork_shared_engine,
    idle_in_transaction,
    lock_contention,
    missing_timeouts,
    pgbouncer,
    pool_exhausted,
    pool_undersized,
    prepared_statements,
    server_connections,
    slow_queries,
    stale_connections,
    streaming,
    threadpool_deadlock,
)
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding


@dataclass(frozen=True)
class CheckSpec:
    """One check: what it is called, which runbooks its findings name, and how to run it."""

    name: str
    runbooks: tuple[str, ...]
    summary: str
    run: Callable[[Evidence], Sequence[Finding]]


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "connection-leak",
        ("connection-leak",),
        "Same app backends idle (in transaction) with the same xact_start across samples, "
        "old holders, GC cleanup warnings, pool pinned at capacity.",
        connection_leak.check,
    ),
    CheckSpec(
        "async-cancellation-leak",
        ("async-cancellation-leak",),
        "A leak signature correlated with client disconnects or async driver cleanup.",
        async_cancellation.check,
    ),
    CheckSpec(
        "pool-undersized",
        ("pool-undersized",),
        "Pool full of short active queries that drains between samples; sizes it by "
        "Little's law within the server budget.",
        pool_undersized.check,
    ),
    CheckSpec(
        "slow-queries",
        ("slow-queries",),
        "App backends active in long statements (not lock waits); statement timeouts (57014).",
        slow_queries.check,
    ),
    CheckSpec(
        "lock-contention",
        ("lock-contention",),
        "App sessions waiting on locks; names the root blocker (any application) and the "
        "exact pg_cancel_backend / pg_terminate_backend call.",
        lock_contention.check,
    ),
    CheckSpec(
        "idle-in-transaction",
        ("idle-in-transaction",),
        "App backends idle in transaction whose ages cluster and rotate; 25P03 timeouts.",
        idle_in_transaction.check,
    ),
    CheckSpec(
        "streaming-holds-session",
        ("streaming-holds-session",),
        "Pool holders whose origin is a streaming response or generator.",
        streaming.check,
    ),
    CheckSpec(
        "threadpool-deadlock",
        ("threadpool-deadlock",),
        "Pool full and callers waiting while the app's backends sit idle, frozen together.",
        threadpool_deadlock.check,
    ),
    CheckSpec(
        "server-max-connections",
        ("server-max-connections",),
        "Refused connections (53300), slots nearly used up, and workers x (pool_size + "
        "max_overflow) against the server budget.",
        server_connections.check,
    ),
    CheckSpec(
        "stale-connections",
        ("stale-connections",),
        "Connections closed under the pool; pool_recycle/pre_ping against idle_session_timeout.",
        stale_connections.check,
    ),
    CheckSpec(
        "connect-timeouts",
        ("connect-timeouts",),
        "Connect timeouts in logs, slow connects measured, connect timeout below latency.",
        connect_timeouts.check,
    ),
    CheckSpec(
        "pgbouncer-saturation",
        ("pgbouncer-saturation",),
        "PgBouncer refusals (max_client_conn, query_wait_timeout) or clients waiting.",
        pgbouncer.check,
    ),
    CheckSpec(
        "prepared-statements-pgbouncer",
        ("prepared-statements-pgbouncer",),
        "Prepared statement already exists / does not exist errors behind a pooler.",
        prepared_statements.check,
    ),
    CheckSpec(
        "fork-shared-engine",
        ("fork-shared-engine",),
        "SSL / protocol errors without pool exhaustion: sockets shared across fork.",
        fork_shared_engine.check,
    ),
    CheckSpec(
        "failover-read-only",
        ("failover-read-only",),
        "Writes refused as read-only (25006), optionally a read-only server.",
        failover.check,
    ),
    CheckSpec(
        "missing-timeouts",
        ("missing-timeouts",),
        "Unset statement / idle-in-transaction timeouts, default pool_timeout (a risk).",
        missing_timeouts.check,
    ),
    CheckSpec(
        "pool-exhausted",
        ("pool-undersized",),
        "Symptom: pool at capacity and/or QueuePool timeouts (3o7r); ranked below its cause.",
        pool_exhausted.check,
    ),
)


def check_named(name: str) -> CheckSpec:
    """The CheckSpec called `name`; KeyError for an unknown name."""
    for spec in CHECKS:
        if spec.name == name:
            return spec
    raise KeyError(name)
