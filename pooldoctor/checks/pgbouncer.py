"""pgbouncer-saturation: PgBouncer's server pool is full; clients queue or are refused."""

from __future__ import annotations

from typing import Any

from pooldoctor.checks.common import finding, log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence, LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings import pgbouncer as facts
from pooldoctor.readings.budget import budget_remedy
from pooldoctor.readings.logs import LogSignal

CHECK = "pgbouncer-saturation"
SATURATION_MARKERS = ("max_client_conn", "query_wait_timeout", "no more connections allowed")
CRITICAL_REFUSALS = 10  # refused clients in the recent window: users see errors
WAITING_KEYS = ("cl_waiting", "client_waiting")
# maxwait past this share of query_wait_timeout: clients are about to be cut with an error
CRITICAL_WAIT_SHARE = 0.5


def check(readings: Readings) -> list[Finding]:
    signal = readings.log(LogEvent.PGBOUNCER, matching=SATURATION_MARKERS)
    if facts.sampled(readings.evidence):
        return _from_admin_console(readings, signal)
    return _from_logs(readings, signal)


def saturated_pools(evidence: Evidence) -> list[dict[str, Any]]:
    """Pools whose clients wait while their servers sit at the effective pool size."""
    found = []
    for bouncer in facts.sampled(evidence):
        latest = bouncer.samples[-1]
        for pool in facts.app_pools(latest):
            limit = facts.pool_limit(bouncer, latest, pool)
            history = facts.pool_history(bouncer, pool.database, pool.user)
            at_limit = pool.sv_active >= limit.base > 0 and pool.sv_idle == 0
            waiting_samples = sum(1 for p in history if p.cl_waiting > 0)
            rising = history[-1].maxwait_seconds >= history[0].maxwait_seconds
            if at_limit and pool.cl_waiting > 0 and rising:
                found.append(
                    {
                        "pgbouncer": facts.label(bouncer),
                        "database": pool.database,
                        "user": pool.user,
                        "pool_mode": facts.pool_mode(bouncer, latest, pool),
                        "limit": limit,
                        "waiting_samples": waiting_samples,
                        "samples": len(history),
                        "show_pools": facts.pools_as_evidence(history),
                        "query_wait_timeout": facts.query_wait_timeout(bouncer),
                        "pool": pool,
                    }
                )
    return sorted(found, key=lambda f: -f["pool"].maxwait_seconds)


def server_connections(evidence: Evidence) -> tuple[int, str]:
    """Server connections the PgBouncer fleet may open, with the arithmetic."""
    per_instance = facts.fleet_server_limits(evidence)
    total = sum(per_instance)
    if len(set(per_instance)) == 1:
        return total, f"{len(per_instance)} PgBouncer instance(s) x {per_instance[0]} = {total}"
    return total, " + ".join(str(n) for n in per_instance) + f" = {total}"


def _from_admin_console(readings: Readings, signal: LogSignal) -> list[Finding]:
    evidence = readings.evidence
    pools = saturated_pools(evidence)
    if not pools:
        return []
    worst = pools[0]
    pool = worst["pool"]
    limit: facts.PoolLimit = worst["limit"]
    total, fleet = server_connections(evidence)
    reasons = [
        f"{pool.cl_waiting} clients waiting (cl_waiting) for {pool.database}/{pool.user} on "
        f"{worst['pgbouncer']}, longest {format_duration(pool.maxwait_seconds)} (maxwait), "
        f"while sv_active {pool.sv_active} sits at the effective pool size "
        f"({limit.arithmetic()})",
        f"clients waited in {worst['waiting_samples']}/{worst['samples']} samples",
        f"the PgBouncer fleet may open {fleet} server connections",
    ]
    if len(pools) > 1:
        reasons.append(f"{len(pools) - 1} more pool(s) saturated")
    app_pools = readings.pool
    if app_pools.has_data and not app_pools.full_now:
        reasons.append("the app's own pools are not full: the queue is in PgBouncer")
    if signal.current:
        reasons.append(signal.describe("PgBouncer refusals"))
    steps = [
        *_budget_steps(readings, limit, total),
        "Find what holds server connections: long transactions (slow-queries, "
        "idle-in-transaction) keep sv_active at the limit",
    ]
    wait_timeout = worst["query_wait_timeout"]
    maxwait = worst["show_pools"]["maxwait_seconds"]
    persistent = worst["waiting_samples"] == worst["samples"] > 1 and maxwait[-1] > maxwait[0]
    critical = (
        persistent
        or signal.recent >= CRITICAL_REFUSALS
        or (wait_timeout > 0 and pool.maxwait_seconds >= wait_timeout * CRITICAL_WAIT_SHARE)
    )
    return [
        finding(
            CHECK,
            f"{pool.database}/{pool.user}",
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            confidence=0.85 if worst["waiting_samples"] > 1 else 0.7,
            title=(
                f"PgBouncer saturated: {pool.cl_waiting} clients queue for "
                f"{pool.database}/{pool.user} at {pool.sv_active}/{limit.effective} server "
                "connections"
            ),
            summary="; ".join(reasons),
            evidence={
                "pgbouncer": worst["pgbouncer"],
                "database": pool.database,
                "user": pool.user,
                "pool_mode": worst["pool_mode"],
                "show_pools": worst["show_pools"],
                "effective_pool_size": limit.as_evidence(),
                "query_wait_timeout_seconds": wait_timeout,
                "fleet_server_connections": fleet,
                "saturated_pools": [
                    f"{p['pgbouncer']} {p['database']}/{p['user']}" for p in pools[:10]
                ],
            },
            remediation=steps,
        )
    ]


def _budget_steps(readings: Readings, limit: facts.PoolLimit, fleet_total: int) -> list[str]:
    budget = readings.budget
    instances = len(facts.sampled(readings.evidence))
    if budget is None:
        return [
            f"Raise pool_size above {limit.pool_size} (or add reserve_pool_size), then RELOAD "
            f"(clients stay connected), only within max_connections: {instances} PgBouncer(s) "
            f"open up to {fleet_total} server connections today"
        ]
    spare = budget.available - fleet_total
    if budget.fits is False or spare <= 0:
        return [
            f"No server slots to add: {budget.arithmetic()}; shorten transactions instead of "
            "raising pool_size"
        ]
    per_instance = spare // max(1, instances)
    return [
        f"Raise pool_size from {limit.pool_size} to at most {limit.pool_size + per_instance} "
        f"(or add reserve_pool_size), then RELOAD on the admin console (clients stay connected): "
        f"{budget.arithmetic()}, leaving {spare} spare slot(s) over {instances} PgBouncer "
        "instance(s)"
    ]


def _from_logs(readings: Readings, signal: LogSignal) -> list[Finding]:
    pool = readings.pool
    waiting = max(
        (
            value
            for instance in pool.instances
            for key, value in instance.samples[-1].counters.items()
            if any(marker in key for marker in WAITING_KEYS)
        ),
        default=0.0,
    )
    reasons = []
    if waiting:
        reasons.append(f"{waiting:.0f} clients waiting in PgBouncer (cl_waiting)")
    if pool.has_data and not pool.full_now:
        reasons.append("the app's own pools are not full: the queue is in PgBouncer")
    budget = readings.budget
    remedy = budget_remedy(budget) if budget is not None else None
    steps = [
        "Confirm with SHOW POOLS; on the admin console (cl_waiting, sv_active vs pool_size, "
        "maxwait), then raise default_pool_size within the server budget"
        + (f" ({budget.arithmetic()})" if budget is not None else "")
        + " or add reserve_pool_size, then RELOAD (clients stay connected)",
        "Find and fix what holds server connections: long transactions (slow-queries, "
        "idle-in-transaction) keep sv_active at the limit",
        "Run pooldoctor with --pgbouncer DSN to judge from the admin console instead of logs",
    ]
    if remedy:
        steps.append(remedy)
    severity = Severity.CRITICAL if signal.recent >= CRITICAL_REFUSALS else Severity.WARNING
    found = log_finding(
        check=CHECK,
        label=readings.label,
        signal=signal,
        what="PgBouncer refusals (max_client_conn / query_wait_timeout)",
        title="PgBouncer saturated: clients queue for a server connection",
        severity=severity,
        confidence=0.75 + (0.1 if waiting else 0.0),
        reasons=reasons,
        evidence={"cl_waiting": waiting},
        remediation=steps,
    )
    if found is None and waiting:
        return [
            finding(
                CHECK,
                readings.label,
                severity=Severity.WARNING,
                confidence=0.6,
                title="PgBouncer saturated: clients queue for a server connection",
                summary="; ".join(reasons),
                evidence={"cl_waiting": waiting},
                remediation=tuple(steps),
            )
        ]
    return [found] if found else []


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "SHOW POOLS: cl_waiting and maxwait rising while sv_active sits at the effective pool size "
    "(pool_size, reserve, max_db/user_connections, instances); else PgBouncer refusals in logs.",
    check,
)
