"""pgbouncer-session-pinning: session-mode PgBouncer where idle app connections hold servers."""

from __future__ import annotations

from pooldoctor.checks.common import finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings import pgbouncer as facts

CHECK = "pgbouncer-session-pinning"
RUNBOOK = "pgbouncer-saturation"
MAX_LISTED = 10


def check(readings: Readings) -> list[Finding]:
    findings = []
    for bouncer in facts.sampled(readings.evidence):
        latest = bouncer.samples[-1]
        for pool in facts.app_pools(latest):
            if facts.pool_mode(bouncer, latest, pool) != "session":
                continue
            limit = facts.pool_limit(bouncer, latest, pool)
            idle = facts.idle_linked_clients(bouncer, pool.database, pool.user)
            full = pool.sv_active >= limit.base > 0 or pool.cl_waiting > 0
            if not idle or not full:
                continue
            seconds = (bouncer.samples[-1].at - bouncer.samples[0].at).total_seconds()
            history = facts.pool_history(bouncer, pool.database, pool.user)
            findings.append(
                finding(
                    CHECK,
                    f"{pool.database}/{pool.user}",
                    severity=Severity.CRITICAL if pool.cl_waiting else Severity.WARNING,
                    confidence=0.9 if pool.cl_waiting else 0.7,
                    title=(
                        f"PgBouncer in session mode: {len(idle)} idle app connections pin "
                        f"{len(idle)} of {pool.sv_active} server connections for "
                        f"{pool.database}/{pool.user}"
                    ),
                    summary=(
                        f"pool_mode = session on {facts.label(bouncer)}: {len(idle)} client "
                        f"connections stayed paired with a server connection without a single "
                        f"request for {format_duration(seconds)} "
                        "(request_time unchanged across samples), "
                        f"while sv_active {pool.sv_active} is at the pool size "
                        f"({limit.arithmetic()}) and {pool.cl_waiting} clients wait "
                        f"(cl_waiting, maxwait {format_duration(pool.maxwait_seconds)})"
                    ),
                    runbook=RUNBOOK,
                    evidence={
                        "pgbouncer": facts.label(bouncer),
                        "database": pool.database,
                        "user": pool.user,
                        "pool_mode": "session",
                        "show_pools": facts.pools_as_evidence(history),
                        "effective_pool_size": limit.as_evidence(),
                        "idle_linked_clients": len(idle),
                        "idle_for_seconds": round(seconds, 1),
                        "clients": idle[:MAX_LISTED],
                    },
                    remediation=(
                        "Stop the bleeding with a RELOAD only (clients stay connected): set "
                        "client_idle_timeout above the app's longest legitimate pause, so idle "
                        "clients are closed and free their server connection (the app needs "
                        "pool_pre_ping to reconnect cleanly), or raise this pool's pool_size "
                        "within the server's max_connections",
                        f"Make the app pools hold fewer idle connections: their sum across "
                        f"processes must stay under {limit.effective} (pool_size small, "
                        "pool_recycle, or NullPool)",
                        "Planned change, not mid-incident: pool_mode = transaction for this "
                        "database (or user), after checking the app for session state (SET, "
                        "advisory locks, LISTEN) and prepared statements (see the "
                        "prepared-statements runbook)",
                    ),
                )
            )
    return findings


SPEC = CheckSpec(
    CHECK,
    (RUNBOOK,),
    "pool_mode = session with clients paired to servers yet idle across samples while "
    "the pool is full.",
    check,
)
