"""pgbouncer-saturation: PgBouncer's server pool is full; clients queue or are refused."""

from __future__ import annotations

from pooldoctor.checks.common import finding, log_finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.evidence import LogEvent
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.budget import budget_remedy, server_budget

CHECK = "pgbouncer-saturation"
SATURATION_MARKERS = ("max_client_conn", "query_wait_timeout", "no more connections allowed")
CRITICAL_REFUSALS = 10  # refused clients in the recent window: users see errors
WAITING_KEYS = ("cl_waiting", "client_waiting")


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    signal = readings.log(LogEvent.PGBOUNCER, matching=SATURATION_MARKERS)
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
    steps = [
        "SHOW POOLS; on the PgBouncer admin console: cl_waiting, sv_active vs pool_size, maxwait"
    ]
    budget = server_budget(evidence, None)
    remedy = budget_remedy(budget) if budget is not None else None
    steps.append(
        "Raise default_pool_size within the server budget"
        + (f" ({budget.arithmetic()})" if budget is not None else "")
        + ", add reserve_pool_size, and fix long holders"
    )
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
    "PgBouncer refusals (max_client_conn, query_wait_timeout) or clients waiting.",
    check,
)
