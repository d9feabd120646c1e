"""The explicit list of checks, in ranking-tie order; each module declares its own SPEC."""

from __future__ import annotations

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
    session_pinning,
    slow_queries,
    stale_connections,
    streaming,
    threadpool_deadlock,
)
from pooldoctor.checks.spec import CheckSpec

CHECKS: tuple[CheckSpec, ...] = tuple(
    module.SPEC
    for module in (
        connection_leak,
        async_cancellation,
        pool_undersized,
        slow_queries,
        lock_contention,
        idle_in_transaction,
        streaming,
        threadpool_deadlock,
        server_connections,
        stale_connections,
        connect_timeouts,
        pgbouncer,
        session_pinning,
        prepared_statements,
        fork_shared_engine,
        failover,
        missing_timeouts,
        pool_exhausted,
    )
)


def check_named(name: str) -> CheckSpec:
    """The CheckSpec called `name`; KeyError for an unknown name."""
    for spec in CHECKS:
        if spec.name == name:
            return spec
    raise KeyError(name)
